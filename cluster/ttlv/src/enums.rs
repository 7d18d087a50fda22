//! KMIP enumeration values this project uses, one module per enumeration, each with the
//! KMIP name of a value for messages and reports.

macro_rules! enumeration {
    ($module:ident { $($name:ident = $value:expr, $text:expr;)* }) => {
        pub mod $module {
            $(pub const $name: u32 = $value;)*

            /// The KMIP name of a value, or its hex value if this project does not know it.
            pub fn name(value: u32) -> String {
                match value {
                    $($value => $text.to_string(),)*
                    other => format!("0x{other:08X}"),
                }
            }
        }
    };
}

enumeration!(operation {
    CREATE = 0x01, "Create";
    CREATE_KEY_PAIR = 0x02, "Create Key Pair";
    REGISTER = 0x03, "Register";
    LOCATE = 0x08, "Locate";
    GET = 0x0A, "Get";
    GET_ATTRIBUTES = 0x0B, "Get Attributes";
    ACTIVATE = 0x12, "Activate";
    REVOKE = 0x13, "Revoke";
    DESTROY = 0x14, "Destroy";
    QUERY = 0x18, "Query";
    DISCOVER_VERSIONS = 0x1E, "Discover Versions";
    ENCRYPT = 0x1F, "Encrypt";
    DECRYPT = 0x20, "Decrypt";
});

enumeration!(result_status {
    SUCCESS = 0x0, "Success";
    OPERATION_FAILED = 0x1, "Operation Failed";
    OPERATION_PENDING = 0x2, "Operation Pending";
    OPERATION_UNDONE = 0x3, "Operation Undone";
});

enumeration!(result_reason {
    ITEM_NOT_FOUND = 0x01, "Item Not Found";
    RESPONSE_TOO_LARGE = 0x02, "Response Too Large";
    AUTHENTICATION_NOT_SUCCESSFUL = 0x03, "Authentication Not Successful";
    INVALID_MESSAGE = 0x04, "Invalid Message";
    OPERATION_NOT_SUPPORTED = 0x05, "Operation Not Supported";
    MISSING_DATA = 0x06, "Missing Data";
    INVALID_FIELD = 0x07, "Invalid Field";
    FEATURE_NOT_SUPPORTED = 0x08, "Feature Not Supported";
    CRYPTOGRAPHIC_FAILURE = 0x0A, "Cryptographic Failure";
    ILLEGAL_OPERATION = 0x0B, "Illegal Operation";
    PERMISSION_DENIED = 0x0C, "Permission Denied";
    INDEX_OUT_OF_BOUNDS = 0x0E, "Index Out of Bounds";
    KEY_FORMAT_TYPE_NOT_SUPPORTED = 0x10, "Key Format Type Not Supported";
    KEY_COMPRESSION_TYPE_NOT_SUPPORTED = 0x11, "Key Compression Type Not Supported";
    GENERAL_FAILURE = 0x100, "General Failure";
    WRONG_KEY_LIFECYCLE_STATE = 0x43, "Wrong Key Lifecycle State";
});

enumeration!(object_type {
    CERTIFICATE = 0x1, "Certificate";
    SYMMETRIC_KEY = 0x2, "Symmetric Key";
    SECRET_DATA = 0x7, "Secret Data";
});

enumeration!(state {
    PRE_ACTIVE = 0x1, "Pre-Active";
    ACTIVE = 0x2, "Active";
    DEACTIVATED = 0x3, "Deactivated";
    COMPROMISED = 0x4, "Compromised";
    DESTROYED = 0x5, "Destroyed";
    DESTROYED_COMPROMISED = 0x6, "Destroyed Compromised";
});

enumeration!(cryptographic_algorithm {
    DES = 0x1, "DES";
    TRIPLE_DES = 0x2, "3DES";
    AES = 0x3, "AES";
    RSA = 0x4, "RSA";
});

enumeration!(block_cipher_mode {
    CBC = 0x1, "CBC";
    ECB = 0x2, "ECB";
    CTR = 0x6, "CTR";
    GCM = 0x9, "GCM";
});

enumeration!(padding_method {
    NONE = 0x1, "None";
    PKCS5 = 0x3, "PKCS5";
});

enumeration!(batch_error_continuation_option {
    CONTINUE = 0x1, "Continue";
    STOP = 0x2, "Stop";
    UNDO = 0x3, "Undo";
});

enumeration!(query_function {
    QUERY_OPERATIONS = 0x1, "Query Operations";
    QUERY_OBJECTS = 0x2, "Query Objects";
    QUERY_SERVER_INFORMATION = 0x3, "Query Server Information";
});

enumeration!(revocation_reason_code {
    UNSPECIFIED = 0x1, "Unspecified";
    KEY_COMPROMISE = 0x2, "Key Compromise";
    SUPERSEDED = 0x5, "Superseded";
    CESSATION_OF_OPERATION = 0x6, "Cessation of Operation";
});

enumeration!(key_format_type {
    RAW = 0x1, "Raw";
    TRANSPARENT_SYMMETRIC_KEY = 0x7, "Transparent Symmetric Key";
});

enumeration!(name_type {
    UNINTERPRETED_TEXT_STRING = 0x1, "Uninterpreted Text String";
});

/// Cryptographic Usage Mask bits.
pub mod usage_mask {
    pub const ENCRYPT: i32 = 0x4;
    pub const DECRYPT: i32 = 0x8;
}
