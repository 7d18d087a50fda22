//! The tags this project reads or writes (KMIP 1.0–2.1 share them), and their names for
//! error messages.

pub type Tag = u32;

macro_rules! tags {
    ($($name:ident = $value:expr, $text:expr;)*) => {
        $(pub const $name: Tag = $value;)*

        /// The KMIP name of a tag, or its hex value if this project does not know it.
        pub fn name(tag: Tag) -> String {
            match tag {
                $($value => $text.to_string(),)*
                other => format!("tag 0x{other:06X}"),
            }
        }
    };
}

tags! {
    ACTIVATION_DATE = 0x42_0001, "Activation Date";
    ASYNCHRONOUS_INDICATOR = 0x42_0007, "Asynchronous Indicator";
    ATTRIBUTE = 0x42_0008, "Attribute";
    ATTRIBUTE_INDEX = 0x42_0009, "Attribute Index";
    ATTRIBUTE_NAME = 0x42_000A, "Attribute Name";
    ATTRIBUTE_VALUE = 0x42_000B, "Attribute Value";
    AUTHENTICATION = 0x42_000C, "Authentication";
    BATCH_COUNT = 0x42_000D, "Batch Count";
    BATCH_ERROR_CONTINUATION_OPTION = 0x42_000E, "Batch Error Continuation Option";
    BATCH_ITEM = 0x42_000F, "Batch Item";
    BLOCK_CIPHER_MODE = 0x42_0011, "Block Cipher Mode";
    COMPROMISE_DATE = 0x42_0020, "Compromise Date";
    COMPROMISE_OCCURRENCE_DATE = 0x42_0021, "Compromise Occurrence Date";
    CRYPTOGRAPHIC_ALGORITHM = 0x42_0028, "Cryptographic Algorithm";
    CRYPTOGRAPHIC_LENGTH = 0x42_002A, "Cryptographic Length";
    CRYPTOGRAPHIC_PARAMETERS = 0x42_002B, "Cryptographic Parameters";
    CRYPTOGRAPHIC_USAGE_MASK = 0x42_002C, "Cryptographic Usage Mask";
    DEACTIVATION_DATE = 0x42_002F, "Deactivation Date";
    DESTROY_DATE = 0x42_0033, "Destroy Date";
    INITIAL_DATE = 0x42_0039, "Initial Date";
    IV_COUNTER_NONCE = 0x42_003D, "IV/Counter/Nonce";
    KEY = 0x42_003F, "Key";
    KEY_BLOCK = 0x42_0040, "Key Block";
    KEY_COMPRESSION_TYPE = 0x42_0041, "Key Compression Type";
    KEY_FORMAT_TYPE = 0x42_0042, "Key Format Type";
    KEY_MATERIAL = 0x42_0043, "Key Material";
    KEY_VALUE = 0x42_0045, "Key Value";
    MAXIMUM_ITEMS = 0x42_004F, "Maximum Items";
    MAXIMUM_RESPONSE_SIZE = 0x42_0050, "Maximum Response Size";
    NAME = 0x42_0053, "Name";
    NAME_TYPE = 0x42_0054, "Name Type";
    NAME_VALUE = 0x42_0055, "Name Value";
    OBJECT_TYPE = 0x42_0057, "Object Type";
    OPERATION = 0x42_005C, "Operation";
    PADDING_METHOD = 0x42_005F, "Padding Method";
    PROTOCOL_VERSION = 0x42_0069, "Protocol Version";
    PROTOCOL_VERSION_MAJOR = 0x42_006A, "Protocol Version Major";
    PROTOCOL_VERSION_MINOR = 0x42_006B, "Protocol Version Minor";
    QUERY_FUNCTION = 0x42_0074, "Query Function";
    REQUEST_HEADER = 0x42_0077, "Request Header";
    REQUEST_MESSAGE = 0x42_0078, "Request Message";
    REQUEST_PAYLOAD = 0x42_0079, "Request Payload";
    RESPONSE_HEADER = 0x42_007A, "Response Header";
    RESPONSE_MESSAGE = 0x42_007B, "Response Message";
    RESPONSE_PAYLOAD = 0x42_007C, "Response Payload";
    RESULT_MESSAGE = 0x42_007D, "Result Message";
    RESULT_REASON = 0x42_007E, "Result Reason";
    RESULT_STATUS = 0x42_007F, "Result Status";
    REVOCATION_MESSAGE = 0x42_0080, "Revocation Message";
    REVOCATION_REASON = 0x42_0081, "Revocation Reason";
    REVOCATION_REASON_CODE = 0x42_0082, "Revocation Reason Code";
    SERVER_INFORMATION = 0x42_0088, "Server Information";
    STATE = 0x42_008D, "State";
    SYMMETRIC_KEY = 0x42_008F, "Symmetric Key";
    TEMPLATE_ATTRIBUTE = 0x42_0091, "Template-Attribute";
    TIME_STAMP = 0x42_0092, "Time Stamp";
    UNIQUE_BATCH_ITEM_ID = 0x42_0093, "Unique Batch Item ID";
    UNIQUE_IDENTIFIER = 0x42_0094, "Unique Identifier";
    VENDOR_IDENTIFICATION = 0x42_009D, "Vendor Identification";
    DATA = 0x42_00C2, "Data";
    RANDOM_IV = 0x42_00C5, "Random IV";
    TAG_LENGTH = 0x42_00CE, "Tag Length";
    OFFSET_ITEMS = 0x42_00D4, "Offset Items";
    AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA = 0x42_00FE, "Authenticated Encryption Additional Data";
    AUTHENTICATED_ENCRYPTION_TAG = 0x42_00FF, "Authenticated Encryption Tag";
    ATTRIBUTES = 0x42_0125, "Attributes";
    ATTRIBUTE_REFERENCE = 0x42_013B, "Attribute Reference";
}
