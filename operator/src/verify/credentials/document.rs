//! The JSON of a docker config, read as the kubelet's `config.go` reads it, without ever
//! quoting a value in an error.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::CredentialError;
use super::key::quote_key;

/// Go's `base64.StdEncoding` or `RawStdEncoding` as the kubelet picks them: padding optional,
/// trailing bits not checked.
const AUTH_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

pub(super) fn parse_document(
    bytes: &[u8],
    document: &'static str,
) -> Result<Value, CredentialError> {
    // serde_json's own message is not used: only its category and position, never text. Its
    // recursion limit (127 levels), checked as it reads, bounds the nesting of a document.
    serde_json::from_slice(bytes).map_err(|error| CredentialError::InvalidJson {
        document,
        problem: match error.classify() {
            serde_json::error::Category::Eof => "unexpected end of input",
            _ if error.to_string().starts_with("recursion limit exceeded") => {
                "nesting deeper than 127 levels, the limit of JSON"
            }
            _ => "syntax error",
        },
        line: error.line(),
        column: error.column(),
    })
}

/// The `auths` object of a `.dockerconfigjson` or `config.json`; `None` when absent or null.
pub(super) fn registries_of_auths<'a>(
    document: &'a Value,
    name: &'static str,
) -> Result<Option<&'a Map<String, Value>>, CredentialError> {
    let top = match document {
        Value::Null => return Ok(None),
        Value::Object(top) => top,
        _ => return Err(shape(name, "the document".to_owned(), "an object")),
    };
    match field(top, "auths") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(auths)) => Ok(Some(auths)),
        Some(_) => Err(shape(name, "auths".to_owned(), "an object")),
    }
}

/// The top-level map of a legacy `.dockercfg`; `None` when null.
pub(super) fn registries_of_dockercfg<'a>(
    document: &'a Value,
    name: &'static str,
) -> Result<Option<&'a Map<String, Value>>, CredentialError> {
    match document {
        Value::Null => Ok(None),
        Value::Object(registries) => Ok(Some(registries)),
        _ => Err(shape(name, "the document".to_owned(), "an object")),
    }
}

type Secrets = (String, String, Option<String>);

/// Reads one entry as `config.go`'s `DockerConfigEntry.UnmarshalJSON` does: field names match
/// case-insensitively, null is absent, a non-empty `auth` replaces username and password.
pub(super) fn parse_entry(
    value: &Value,
    raw_key: &str,
    document: &'static str,
    parent: &str,
) -> Result<Secrets, CredentialError> {
    let registry = quote_key(raw_key);
    let location = || {
        if parent.is_empty() {
            format!("{registry:?}")
        } else {
            format!("{parent}[{registry:?}]")
        }
    };
    let entry = match value {
        Value::Null => return Ok(Secrets::default()),
        Value::Object(entry) => entry,
        _ => return Err(shape(document, location(), "an object")),
    };
    let string = |name: &str| match field(entry, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(_) => Err(shape(
            document,
            format!("{}.{name}", location()),
            "a string",
        )),
    };
    let mut username = string("username")?.unwrap_or_default().to_owned();
    let mut password = string("password")?.unwrap_or_default().to_owned();
    let identity_token = string("identitytoken")?
        .filter(|token| !token.is_empty())
        .map(str::to_owned);
    if let Some(auth) = string("auth")?.filter(|auth| !auth.is_empty()) {
        (username, password) = decode_auth(auth, document, &registry)?;
    }
    Ok((username, password, identity_token))
}

/// `config.go`'s `decodeDockerConfigFieldAuth`: base64 (padded or not; Go skips CR and LF) of
/// `username:password`, split at the first `:`.
fn decode_auth(
    auth: &str,
    document: &'static str,
    registry: &str,
) -> Result<(String, String), CredentialError> {
    let registry = || registry.to_owned();
    let cleaned: String = auth.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    let decoded = AUTH_BASE64
        .decode(cleaned)
        .map_err(|_| CredentialError::AuthNotBase64 {
            document,
            registry: registry(),
        })?;
    let decoded = String::from_utf8(decoded).map_err(|_| CredentialError::AuthNotUtf8 {
        document,
        registry: registry(),
    })?;
    let (username, password) =
        decoded
            .split_once(':')
            .ok_or_else(|| CredentialError::AuthWithoutColon {
                document,
                registry: registry(),
            })?;
    Ok((username.to_owned(), password.to_owned()))
}

/// A field by exact name, else by ASCII case-insensitive name (Go's `encoding/json`).
fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

fn shape(document: &'static str, location: String, expected: &'static str) -> CredentialError {
    CredentialError::UnexpectedShape {
        document,
        location,
        expected,
    }
}
