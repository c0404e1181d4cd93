//! Which AWS credential source a token names (docs/reference.md, Settings), read from its claims alone.
//!
//! [`CredentialSource::from_claims`] decides, without any network call, which of the
//! three sources a token names: inline credentials, an IAM role for web identity, or
//! the Quilt registry. Nothing here reads the environment, a profile or instance
//! metadata; `crate::aws` turns the source into credentials.
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Map, Value};

/// Inline credentials carried by the token (`aws_credentials` / `awsCredentials`).
#[derive(Clone)]
pub struct InlineCredentials {
    /// The access key id (not a secret on its own, but never logged either).
    pub access_key_id: SecretString,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// The session token, for temporary credentials.
    pub session_token: Option<SecretString>,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// The region the token names.
    pub region: Option<String>,
}

impl std::fmt::Debug for InlineCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineCredentials")
            .field("expires_at", &self.expires_at)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Where a caller's AWS credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// Credentials inside the token.
    Inline(InlineCredentials),
    /// `AssumeRoleWithWebIdentity` on this role with the token.
    WebIdentity {
        /// The IAM role ARN.
        role_arn: String,
    },
    /// Exchange at `{registry}/api/auth/get_credentials`.
    Registry {
        /// The registry base URL.
        url: String,
    },
    /// No source: AWS-backed tools are refused with `no_aws_credentials`.
    None,
}

/// The public summary of a [`CredentialSource`] (`auth_status.aws`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CredentialSummary {
    /// `inline`, `web_identity`, `registry` or `none`.
    pub source: &'static str,
    /// The role, for web identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Expiry of inline credentials, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The region calls will use.
    pub region: String,
}

impl CredentialSource {
    /// Picks the first credential source (docs/reference.md, Settings) that the claims (and the registry setting)
    /// provide. `Err` names a claim of the wrong shape.
    pub fn from_claims(
        payload: &Map<String, Value>,
        roles: &[String],
        registry_url: Option<&str>,
    ) -> Result<CredentialSource, ClaimShapeError> {
        if let Some(value) = first(payload, &["aws_credentials", "awsCredentials"]) {
            return inline(value).map(CredentialSource::Inline);
        }
        let explicit_role = first(
            payload,
            &["aws_role_arn", "awsRoleArn", "role_arn", "roleArn"],
        );
        if let Some(value) = explicit_role {
            let Some(arn) = value.as_str().filter(|a| !a.trim().is_empty()) else {
                return Err(ClaimShapeError::RoleArnNotString);
            };
            return Ok(CredentialSource::WebIdentity {
                role_arn: arn.trim().to_owned(),
            });
        }
        if let Some(arn) = roles.iter().find(|r| is_iam_role_arn(r)) {
            return Ok(CredentialSource::WebIdentity {
                role_arn: arn.clone(),
            });
        }
        if let Some(url) = registry_url {
            return Ok(CredentialSource::Registry {
                url: url.to_owned(),
            });
        }
        Ok(CredentialSource::None)
    }

    /// The summary for `auth_status` and `status`.
    pub fn summary(&self, default_region: &str) -> CredentialSummary {
        let region = |r: Option<&String>| r.cloned().unwrap_or_else(|| default_region.to_owned());
        match self {
            CredentialSource::Inline(c) => CredentialSummary {
                source: "inline",
                role_arn: None,
                expires_at: c.expires_at.and_then(crate::time::rfc3339),
                region: region(c.region.as_ref()),
            },
            CredentialSource::WebIdentity { role_arn } => CredentialSummary {
                source: "web_identity",
                role_arn: Some(role_arn.clone()),
                expires_at: None,
                region: region(None),
            },
            CredentialSource::Registry { .. } => CredentialSummary {
                source: "registry",
                role_arn: None,
                expires_at: None,
                region: region(None),
            },
            CredentialSource::None => CredentialSummary {
                source: "none",
                role_arn: None,
                expires_at: None,
                region: region(None),
            },
        }
    }
}

/// `arn:<partition>:iam::<account>:role/<name>`.
pub fn is_iam_role_arn(text: &str) -> bool {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && !account.is_empty()
            && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty()))
}

fn first<'a>(payload: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter()
        .filter_map(|k| payload.get(*k))
        .find(|v| !v.is_null())
}

/// A credential claim of the wrong shape (the token fails as `invalid_claims`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimShapeError {
    /// The role ARN claim is not a non-empty string.
    #[error("the role ARN claim is not a string")]
    RoleArnNotString,
    /// `aws_credentials` is not an object.
    #[error("the aws_credentials claim is not an object")]
    CredentialsNotObject,
    /// A member of `aws_credentials` is not a non-empty string.
    #[error("aws_credentials.{0} is not a non-empty string")]
    NotString(&'static str),
    /// A required member of `aws_credentials` is missing.
    #[error("aws_credentials has no {0}")]
    Missing(&'static str),
    /// `aws_credentials.expiration` is not an RFC 3339 time.
    #[error("aws_credentials.expiration is not an RFC 3339 time")]
    BadExpiration,
}

fn inline(value: &Value) -> Result<InlineCredentials, ClaimShapeError> {
    let Value::Object(obj) = value else {
        return Err(ClaimShapeError::CredentialsNotObject);
    };
    let text = |keys: &[&'static str]| -> Result<Option<String>, ClaimShapeError> {
        match first(obj, keys) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(ClaimShapeError::NotString(keys[0])),
        }
    };
    let access_key_id = text(&["access_key_id", "accessKeyId"])?
        .ok_or(ClaimShapeError::Missing("access_key_id"))?;
    let secret_access_key = text(&["secret_access_key", "secretAccessKey"])?
        .ok_or(ClaimShapeError::Missing("secret_access_key"))?;
    let session_token = text(&["session_token", "sessionToken"])?;
    let expires_at = match text(&["expiration", "Expiration"])? {
        None => None,
        Some(t) => Some(crate::time::parse_rfc3339(&t).ok_or(ClaimShapeError::BadExpiration)?),
    };
    Ok(InlineCredentials {
        access_key_id: SecretString::from(access_key_id),
        secret_access_key: SecretString::from(secret_access_key),
        session_token: session_token.map(SecretString::from),
        expires_at,
        region: text(&["region"])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn source(
        payload: Value,
        roles: &[&str],
        registry: Option<&str>,
    ) -> Result<CredentialSource, ClaimShapeError> {
        let Value::Object(map) = payload else {
            unreachable!()
        };
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        CredentialSource::from_claims(&map, &roles, registry)
    }

    #[test]
    fn order_of_sources() {
        let role = "arn:aws:iam::123456789012:role/Reader";
        let inline = json!({"aws_credentials": {"access_key_id": "AKIA", "secret_access_key": "s"}, "aws_role_arn": role});
        assert_eq!(
            source(inline, &[role], Some("https://r"))
                .unwrap()
                .summary("us-east-1")
                .source,
            "inline"
        );
        let camel = json!({"awsCredentials": {"accessKeyId": "AKIA", "secretAccessKey": "s", "Expiration": "2026-11-26T10:00:00Z", "region": "eu-west-1"}});
        let s = source(camel, &[], None).unwrap().summary("us-east-1");
        assert_eq!(
            (s.source, s.expires_at.as_deref(), s.region.as_str()),
            ("inline", Some("2026-11-26T10:00:00Z"), "eu-west-1")
        );
        for key in ["aws_role_arn", "awsRoleArn", "role_arn", "roleArn"] {
            let s = source(json!({key: role}), &[], Some("https://r"))
                .unwrap()
                .summary("us-east-1");
            assert_eq!(
                (s.source, s.role_arn.as_deref()),
                ("web_identity", Some(role)),
                "{key}"
            );
        }
        let s = source(json!({}), &["ReadQuiltBucket", role], Some("https://r"))
            .unwrap()
            .summary("x");
        assert_eq!(
            (s.source, s.role_arn.as_deref()),
            ("web_identity", Some(role))
        );
        assert_eq!(
            source(json!({}), &["ReadQuiltBucket"], Some("https://r"))
                .unwrap()
                .summary("x")
                .source,
            "registry"
        );
        assert_eq!(
            source(json!({}), &[], None).unwrap().summary("x").source,
            "none"
        );
    }

    #[test]
    fn malformed_inline_credentials_are_errors() {
        assert!(source(json!({"aws_credentials": "AKIA:secret"}), &[], None).is_err());
        assert!(
            source(
                json!({"aws_credentials": {"access_key_id": "AKIA"}}),
                &[],
                None
            )
            .is_err()
        );
        assert!(source(json!({"aws_credentials": {"access_key_id": "A", "secret_access_key": "s", "expiration": "soon"}}), &[], None).is_err());
        assert!(source(json!({"aws_role_arn": 5}), &[], None).is_err());
    }

    #[test]
    fn debug_hides_inline_secrets() {
        let creds = source(json!({"aws_credentials": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "topsecret", "session_token": "sess"}}), &[], None).unwrap();
        let debug = format!("{creds:?}");
        for secret in ["AKIAEXAMPLE", "topsecret", "sess"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn role_arn_recognition() {
        for (arn, ok) in [
            ("arn:aws:iam::123456789012:role/Reader", true),
            ("arn:aws-us-gov:iam::123456789012:role/path/Reader", true),
            ("arn:aws:iam::123456789012:user/Reader", false),
            ("arn:aws:iam::abc:role/Reader", false),
            ("arn:aws:iam::123456789012:role/", false),
            ("ReadQuiltBucket", false),
            ("arn:aws:s3:::bucket", false),
        ] {
            assert_eq!(is_iam_role_arn(arn), ok, "{arn}");
        }
    }
}
