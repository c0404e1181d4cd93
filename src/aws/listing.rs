//! S3 listings ask for URL-encoded names (`encoding-type=url`), so that any key lists,
//! even one that XML 1.0 cannot carry (SPEC §6 "S3 names"); [`listed_name`] reads
//! them back.

use aws_sdk_s3::types::EncodingType;
use percent_encoding::percent_decode_str;

use crate::error::{ErrorCode, ToolError};

/// A key or prefix as a listing returned it, decoded when the listing says it is
/// URL-encoded (`+` is a space, as S3 writes it; a literal `+` comes as `%2B`).
pub(crate) fn listed_name(
    text: &str,
    encoding: Option<&EncodingType>,
) -> Result<String, ToolError> {
    if !matches!(encoding, Some(EncodingType::Url)) {
        return Ok(text.to_owned());
    }
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| {
            ToolError::new(
                ErrorCode::UpstreamError,
                "S3 listed a name that is not URL-encoded UTF-8",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_names_are_decoded_only_when_encoded() {
        let url = Some(&EncodingType::Url);
        assert_eq!(listed_name("a+b%2Bc%25d%00", url).unwrap(), "a b+c%d\0");
        assert_eq!(listed_name("caf%C3%A9/", url).unwrap(), "café/");
        assert_eq!(listed_name("a+b%41", None).unwrap(), "a+b%41");
        assert_eq!(
            listed_name("%ff", url).unwrap_err().code,
            ErrorCode::UpstreamError
        );
    }
}
