# PyKMIP's own client for `wekasim bench-kmip --pykmip`: the same AES-256-GCM Encrypt and
# Decrypt count as the harness's connector, on a key it creates, over one mutual-TLS
# connection, in KMIP 2.0 (the version the connector agrees with PyKMIP).
#
# ProxyKmipClient.encrypt/decrypt drop GCM's Authenticated Encryption Tag (they return only
# data and IV), so Encrypt and Decrypt are sent through the same client's KMIPProxy with
# PyKMIP's own payload classes, which carry it.
#
# usage: python bench_kmip_client.py HOST PORT CA CERT KEY COUNT
# prints one JSON line: {"uid": ..., "count": N, "encrypt_s": ..., "decrypt_s": ...}
import json
import os
import sys
import time

from kmip.core import enums
from kmip.core.attributes import CryptographicParameters
from kmip.core.messages import messages, payloads
from kmip.core.messages.contents import Operation
from kmip.pie.client import ProxyKmipClient


def call(proxy, operation, payload):
    item = messages.RequestBatchItem(operation=Operation(operation), request_payload=payload)
    response = proxy._send_and_receive_message(proxy._build_request_message(None, [item]))
    answer = response.batch_items[0]
    if answer.result_status.value != enums.ResultStatus.SUCCESS:
        raise SystemExit(
            "PyKMIP client: {0} failed: {1} {2}".format(
                operation, answer.result_reason, answer.result_message
            )
        )
    return answer.response_payload


def main():
    host, port, ca, cert, key, count = sys.argv[1:7]
    count = int(count)
    client = ProxyKmipClient(
        hostname=host, port=int(port), cert=cert, key=key, ca=ca, config_file=os.devnull
    )
    with client:
        uid = client.create(
            enums.CryptographicAlgorithm.AES,
            256,
            name="wekasim-bench-kmip-python",
            cryptographic_usage_mask=[
                enums.CryptographicUsageMask.ENCRYPT,
                enums.CryptographicUsageMask.DECRYPT,
            ],
        )
        client.activate(uid)
        client.kmip_version = enums.KMIPVersion.KMIP_2_0
        proxy = client.proxy
        params = CryptographicParameters(
            block_cipher_mode=enums.BlockCipherMode.GCM,
            cryptographic_algorithm=enums.CryptographicAlgorithm.AES,
            tag_length=16,
        )
        plaintexts = [os.urandom(32) for _ in range(count)]
        sealed = []
        start = time.perf_counter()
        for p in plaintexts:
            iv = os.urandom(12)
            out = call(
                proxy,
                enums.Operation.ENCRYPT,
                payloads.EncryptRequestPayload(
                    unique_identifier=uid,
                    cryptographic_parameters=params,
                    data=p,
                    iv_counter_nonce=iv,
                ),
            )
            sealed.append((out.data, iv, out.auth_tag))
        encrypt_s = time.perf_counter() - start
        start = time.perf_counter()
        opened = []
        for data, iv, tag in sealed:
            out = call(
                proxy,
                enums.Operation.DECRYPT,
                payloads.DecryptRequestPayload(
                    unique_identifier=uid,
                    cryptographic_parameters=params,
                    data=data,
                    iv_counter_nonce=iv,
                    auth_tag=tag,
                ),
            )
            opened.append(out.data)
        decrypt_s = time.perf_counter() - start
    if opened != plaintexts:
        raise SystemExit("PyKMIP client: the decrypted data differ from the plaintexts")
    print(json.dumps({"uid": uid, "count": count, "encrypt_s": encrypt_s, "decrypt_s": decrypt_s}))


main()
