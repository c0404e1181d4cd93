//! The contract's environment variables (docs/reference.md, Settings), read once at start-up.
//!
//! Nothing here reads AWS credential variables: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and `AWS_PROFILE` are not looked at,
//! whatever their values.

use std::path::PathBuf;

use secrecy::SecretString;

/// Default keyring service name.
pub const DEFAULT_KEYRING_SERVICE: &str = "quilt-mcp";
/// Default keyring user name.
pub const DEFAULT_KEYRING_USER: &str = "default";
/// Default expected audience.
pub const DEFAULT_AUDIENCE: &str = "quilt-mcp-server";
/// Default clock leeway in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Default AWS region.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The default log filter.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Where the JSON log lines go (`QUILT_MCP_LOG_TARGET`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogTarget {
    /// Daily files in the log directory (the default).
    #[default]
    File,
    /// Standard error, for containers and process supervisors.
    Stderr,
}

/// Where verification keys come from. Exactly one source may be configured.
#[derive(Debug, Clone)]
pub enum KeyConfig {
    /// No key source configured.
    None,
    /// HMAC shared secret (`QUILT_MCP_JWT_SECRET` or `MCP_ENHANCED_JWT_SECRET`).
    Secret(SecretString),
    /// A PEM public key file (`QUILT_MCP_JWT_PUBLIC_KEY`).
    PublicKeyFile(PathBuf),
    /// A JWKS file (`QUILT_MCP_JWKS`).
    JwksFile(PathBuf),
    /// More than one source configured: a configuration error, named by variable.
    Conflict(Vec<&'static str>),
    /// A key setting still holds a placeholder (a configuration error): no key.
    Placeholder {
        /// The variable.
        variable: &'static str,
        /// The placeholder as set (not a secret).
        value: String,
    },
}

impl KeyConfig {
    /// A short word for logs and status: `none`, `secret`, `public_key`, `jwks`,
    /// `conflict`, `placeholder`.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyConfig::None => "none",
            KeyConfig::Placeholder { .. } => "placeholder",
            KeyConfig::Secret(_) => "secret",
            KeyConfig::PublicKeyFile(_) => "public_key",
            KeyConfig::JwksFile(_) => "jwks",
            KeyConfig::Conflict(_) => "conflict",
        }
    }
}

/// A problem with the configuration itself (not with the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The variable at fault.
    pub variable: &'static str,
    /// What is wrong with it, in plain words.
    pub problem: String,
}

/// The whole configuration of a run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `QUILT_MCP_TOKEN`, normalized (no `Bearer `, no surrounding whitespace); `None`
    /// when unset or empty.
    pub token: Option<SecretString>,
    /// Keyring entry service name.
    pub keyring_service: String,
    /// Keyring entry user name.
    pub keyring_user: String,
    /// The verification key source.
    pub key: KeyConfig,
    /// Expected audience.
    pub audience: String,
    /// Expected issuer, when configured.
    pub issuer: Option<String>,
    /// Clock leeway in seconds.
    pub leeway_secs: u64,
    /// Quilt registry base URL.
    pub registry_url: Option<String>,
    /// Region when the token names none.
    pub aws_region: String,
    /// `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_S3`.
    pub endpoint_url_s3: Option<String>,
    /// `AWS_ENDPOINT_URL_STS`.
    pub endpoint_url_sts: Option<String>,
    /// Path-style S3 addressing.
    pub s3_force_path_style: bool,
    /// Log directory override.
    pub log_dir: Option<PathBuf>,
    /// Log filter (EnvFilter syntax), checked: one that does not parse is a
    /// configuration error and the default applies.
    pub log_filter: String,
    /// Where the JSON log lines go.
    pub log_target: LogTarget,
    /// Hide and refuse every tool that writes.
    pub read_only: bool,
    /// `QUILT_MCP_TOOLSETS`: the groups of tools offered.
    pub toolsets: Toolsets,
    /// The Quilt catalog URL.
    pub catalog_url: Option<String>,
    /// `QUILT_MCP_PUBLIC_URL`: HTTP mode's externally visible base URL (no trailing
    /// `/`), for the metadata and challenge URLs.
    pub public_url: Option<String>,
    /// Problems found while reading the variables (bad numbers, bad booleans).
    pub errors: Vec<ConfigError>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Config {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a table in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Config {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // A placeholder is not a setting: it reads as unset (docs/reference.md, Settings, placeholders).
        let get = |name: &str| set(name).filter(|v| !is_placeholder(v));
        let mut errors = Vec::new();

        // A placeholder in a key setting is a configuration error, and no key is used.
        let key_placeholders: Vec<ConfigError> = KEY_VARIABLES
            .into_iter()
            .filter_map(|name| {
                set(name)
                    .filter(|v| is_placeholder(v))
                    .map(|v| ConfigError {
                        variable: name,
                        problem: format!(
                            "{:?} is a placeholder, not a key: set it, or remove the variable",
                            v.trim()
                        ),
                    })
            })
            .collect();

        let secret = get("QUILT_MCP_JWT_SECRET")
            .map(|v| ("QUILT_MCP_JWT_SECRET", v))
            .or_else(|| get("MCP_ENHANCED_JWT_SECRET").map(|v| ("MCP_ENHANCED_JWT_SECRET", v)));
        let public_key = get("QUILT_MCP_JWT_PUBLIC_KEY");
        let jwks = get("QUILT_MCP_JWKS");
        let mut configured: Vec<&'static str> = Vec::new();
        if let Some((name, _)) = &secret {
            configured.push(name);
        }
        if public_key.is_some() {
            configured.push("QUILT_MCP_JWT_PUBLIC_KEY");
        }
        if jwks.is_some() {
            configured.push("QUILT_MCP_JWKS");
        }
        let key = if let Some(first) = key_placeholders.first() {
            let placeholder = KeyConfig::Placeholder {
                variable: first.variable,
                value: set(first.variable).unwrap_or_default().trim().to_owned(),
            };
            errors.extend(key_placeholders);
            placeholder
        } else if configured.len() > 1 {
            KeyConfig::Conflict(configured)
        } else if let Some((_, value)) = secret {
            KeyConfig::Secret(SecretString::from(value))
        } else if let Some(path) = public_key {
            KeyConfig::PublicKeyFile(PathBuf::from(path.trim()))
        } else if let Some(path) = jwks {
            KeyConfig::JwksFile(PathBuf::from(path.trim()))
        } else {
            KeyConfig::None
        };

        let leeway_secs = match get("QUILT_MCP_JWT_LEEWAY_SECS") {
            None => DEFAULT_LEEWAY_SECS,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n <= 86_400 => n,
                _ => {
                    errors.push(ConfigError {
                        variable: "QUILT_MCP_JWT_LEEWAY_SECS",
                        problem: format!(
                            "expected a whole number of seconds from 0 to 86400, got {:?}",
                            v.trim()
                        ),
                    });
                    DEFAULT_LEEWAY_SECS
                }
            },
        };
        let mut flag = |name: &'static str| match get(name) {
            None => false,
            Some(v) => match parse_bool(&v) {
                Some(b) => b,
                None => {
                    errors.push(ConfigError {
                        variable: name,
                        problem: format!("expected true or false, got {:?}", v.trim()),
                    });
                    false
                }
            },
        };
        let s3_force_path_style = flag("QUILT_MCP_S3_FORCE_PATH_STYLE");
        // Read-only fails closed (docs/reference.md, Settings): only `false` (or unset) turns it off.
        let read_only = match get("QUILT_MCP_READ_ONLY") {
            None => false,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    errors.push(ConfigError {
                        variable: "QUILT_MCP_READ_ONLY",
                        problem: format!(
                            "expected true or false, got {:?}; read-only mode is on until this is fixed",
                            v.trim()
                        ),
                    });
                    true
                }
            },
        };
        let public_url = get("QUILT_MCP_PUBLIC_URL").and_then(|v| {
            parse_public_url(&v)
                .map_err(|problem| {
                    errors.push(ConfigError {
                        variable: "QUILT_MCP_PUBLIC_URL",
                        problem: problem.to_string(),
                    })
                })
                .ok()
        });
        // A filter that does not parse is an error, never silently ignored; the
        // default applies until it is fixed.
        let log_filter = match get("QUILT_MCP_LOG") {
            None => DEFAULT_LOG_FILTER.to_owned(),
            Some(v) => match tracing_subscriber::EnvFilter::try_new(v.trim()) {
                Ok(_) => v.trim().to_owned(),
                Err(e) => {
                    errors.push(ConfigError {
                        variable: "QUILT_MCP_LOG",
                        problem: format!(
                            "{:?} is not a log filter ({e}); logging at {DEFAULT_LOG_FILTER} until this is fixed",
                            v.trim()
                        ),
                    });
                    DEFAULT_LOG_FILTER.to_owned()
                }
            },
        };
        let log_target = match get("QUILT_MCP_LOG_TARGET") {
            None => LogTarget::File,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "file" => LogTarget::File,
                "stderr" => LogTarget::Stderr,
                _ => {
                    errors.push(ConfigError {
                        variable: "QUILT_MCP_LOG_TARGET",
                        problem: format!(
                            "expected file or stderr, got {:?}; writing log files until this is fixed",
                            v.trim()
                        ),
                    });
                    LogTarget::File
                }
            },
        };

        Config {
            token: get("QUILT_MCP_TOKEN")
                .and_then(|raw| normalize_token(&raw).map(str::to_owned))
                .map(SecretString::from),
            keyring_service: get("QUILT_MCP_KEYRING_SERVICE")
                .unwrap_or_else(|| DEFAULT_KEYRING_SERVICE.to_owned()),
            keyring_user: get("QUILT_MCP_KEYRING_USER")
                .unwrap_or_else(|| DEFAULT_KEYRING_USER.to_owned()),
            key,
            audience: get("QUILT_MCP_JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            issuer: get("QUILT_MCP_JWT_ISSUER"),
            leeway_secs,
            registry_url: get("QUILT_REGISTRY_URL")
                .map(|u| u.trim().trim_end_matches('/').to_owned()),
            aws_region: get("QUILT_MCP_AWS_REGION").unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            endpoint_url: get("AWS_ENDPOINT_URL"),
            endpoint_url_s3: get("AWS_ENDPOINT_URL_S3"),
            endpoint_url_sts: get("AWS_ENDPOINT_URL_STS"),
            s3_force_path_style,
            log_dir: get("QUILT_MCP_LOG_DIR").map(PathBuf::from),
            log_filter,
            log_target,
            read_only,
            toolsets: Toolsets::parse(get("QUILT_MCP_TOOLSETS").as_deref(), &mut errors),
            catalog_url: get("QUILT_CATALOG_URL"),
            public_url,
            errors,
        }
    }
}

/// Checks an externally visible base URL (`QUILT_MCP_PUBLIC_URL`, `--public-url`):
/// `http` or `https`, a host, no user info, query or fragment; an optional path
/// prefix. Returns it without a trailing `/`.
pub fn parse_public_url(value: &str) -> Result<String, PublicUrlError> {
    let text = value.trim().trim_end_matches('/');
    let problem = |why: &'static str| {
        Err(PublicUrlError {
            why,
            value: text.to_owned(),
        })
    };
    let Ok(uri) = text.parse::<http::Uri>() else {
        return problem("expected a URL such as https://mcp.example.com");
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return problem("expected an http or https URL");
    }
    match uri.authority() {
        None => return problem("expected a URL with a host"),
        Some(a) if a.as_str().contains('@') => return problem("expected a URL without user info"),
        Some(a) if a.host().is_empty() => return problem("expected a URL with a host"),
        Some(_) => {}
    }
    if uri.query().is_some() || text.contains('#') {
        return problem("expected a URL without a query or fragment");
    }
    Ok(text.to_owned())
}

/// Why a public base URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}, got {value:?}")]
pub struct PublicUrlError {
    why: &'static str,
    value: String,
}

/// A token setting as it is read (docs/reference.md, Settings): surrounding whitespace and one leading
/// `Bearer ` (any case) stripped, once; `None` when nothing is left.
pub fn normalize_token(raw: &str) -> Option<&str> {
    let trimmed = raw.trim();
    let rest = match trimmed.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => trimmed[7..].trim_start(),
        _ if trimmed.eq_ignore_ascii_case("bearer") => "",
        _ => trimmed,
    };
    (!rest.is_empty()).then_some(rest)
}

/// The variables that name a verification key source.
const KEY_VARIABLES: [&str; 4] = [
    "QUILT_MCP_JWT_SECRET",
    "MCP_ENHANCED_JWT_SECRET",
    "QUILT_MCP_JWT_PUBLIC_KEY",
    "QUILT_MCP_JWKS",
];

/// Whether `value` is a placeholder rather than a value: an unsubstituted launcher
/// placeholder `${…}` (an MCP bundle's optional field left empty) or a `<…>` as
/// `config` prints it.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    (v.starts_with("${") && v.ends_with('}')) || (v.starts_with('<') && v.ends_with('>'))
}

/// A group of tools (docs/reference.md, Settings: `QUILT_MCP_TOOLSETS`). Every tool
/// declares one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Toolset {
    /// Always offered, whatever `QUILT_MCP_TOOLSETS` says (`auth_status`).
    Core,
    /// The bucket and object tools, and the `s3://` resources.
    Buckets,
    /// The package tools, and the `quilt+s3://` resources.
    Packages,
    /// The catalog search tools.
    Search,
}

impl Toolset {
    /// The toolsets a user can name, by name.
    pub const NAMED: [(&'static str, Toolset); 3] = [
        ("buckets", Toolset::Buckets),
        ("packages", Toolset::Packages),
        ("search", Toolset::Search),
    ];
}

/// The toolsets a server offers. `Core` always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Toolsets {
    buckets: bool,
    packages: bool,
    search: bool,
}

impl Toolsets {
    /// Every toolset: the default.
    pub const ALL: Toolsets = Toolsets {
        buckets: true,
        packages: true,
        search: true,
    };
    /// Only the tools that are always offered.
    pub const NONE: Toolsets = Toolsets {
        buckets: false,
        packages: false,
        search: false,
    };

    /// Whether `toolset` is offered.
    pub fn offers(self, toolset: Toolset) -> bool {
        match toolset {
            Toolset::Core => true,
            Toolset::Buckets => self.buckets,
            Toolset::Packages => self.packages,
            Toolset::Search => self.search,
        }
    }

    /// These toolsets and `toolset`.
    #[must_use]
    pub fn with(mut self, toolset: Toolset) -> Toolsets {
        match toolset {
            Toolset::Core => {}
            Toolset::Buckets => self.buckets = true,
            Toolset::Packages => self.packages = true,
            Toolset::Search => self.search = true,
        }
        self
    }

    /// The names offered, as `QUILT_MCP_TOOLSETS` would say them (`all` for all).
    pub fn names(self) -> String {
        if self == Toolsets::ALL {
            return "all".to_owned();
        }
        let names: Vec<&str> = Toolset::NAMED
            .iter()
            .filter(|(_, t)| self.offers(*t))
            .map(|(name, _)| *name)
            .collect();
        if names.is_empty() {
            "none (auth_status only)".to_owned()
        } else {
            names.join(",")
        }
    }

    /// Reads `QUILT_MCP_TOOLSETS`: unset means `all`. It fails closed: a name that is
    /// not a toolset is a configuration error and offers nothing, so a typo never
    /// offers more tools than were asked for (the names that are toolsets still
    /// apply; with none, only `auth_status` is offered).
    pub fn parse(value: Option<&str>, errors: &mut Vec<ConfigError>) -> Toolsets {
        let Some(value) = value else {
            return Toolsets::ALL;
        };
        let mut offered = Toolsets::NONE;
        let mut unknown = Vec::new();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let lower = name.to_ascii_lowercase();
            if lower == "all" {
                offered = Toolsets::ALL;
            } else if let Some((_, toolset)) = Toolset::NAMED.iter().find(|(n, _)| *n == lower) {
                offered = offered.with(*toolset);
            } else {
                unknown.push(name.chars().take(40).collect::<String>());
            }
        }
        if !unknown.is_empty() {
            errors.push(ConfigError {
                variable: "QUILT_MCP_TOOLSETS",
                problem: format!(
                    "{unknown:?} {} not a toolset (expected a comma-separated list of buckets, packages, search or all); offering only {} until this is fixed",
                    if unknown.len() == 1 { "is" } else { "are" },
                    offered.names()
                ),
            });
        }
        offered
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]);
        assert!(c.token.is_none());
        assert_eq!(c.keyring_service, "quilt-mcp");
        assert_eq!(c.keyring_user, "default");
        assert_eq!(c.key.kind(), "none");
        assert_eq!(c.audience, "quilt-mcp-server");
        assert_eq!(c.leeway_secs, 30);
        assert_eq!(c.aws_region, "us-east-1");
        assert_eq!(c.log_filter, "info");
        assert!(!c.read_only);
        assert!(c.errors.is_empty());
    }

    #[test]
    fn token_is_normalized() {
        let c = config(&[("QUILT_MCP_TOKEN", "  Bearer abc.def.ghi \n")]);
        assert_eq!(
            c.token.as_ref().map(|t| t.expose_secret()),
            Some("abc.def.ghi")
        );
        assert!(config(&[("QUILT_MCP_TOKEN", "Bearer   ")]).token.is_none());
    }

    #[test]
    fn key_sources() {
        assert_eq!(
            config(&[("QUILT_MCP_JWT_SECRET", "s")]).key.kind(),
            "secret"
        );
        assert_eq!(
            config(&[("MCP_ENHANCED_JWT_SECRET", "s")]).key.kind(),
            "secret"
        );
        assert_eq!(
            config(&[("QUILT_MCP_JWT_PUBLIC_KEY", "/k.pem")]).key.kind(),
            "public_key"
        );
        assert_eq!(config(&[("QUILT_MCP_JWKS", "/k.json")]).key.kind(), "jwks");
        match config(&[("QUILT_MCP_JWT_SECRET", "s"), ("QUILT_MCP_JWKS", "/k.json")]).key {
            KeyConfig::Conflict(names) => {
                assert_eq!(names, ["QUILT_MCP_JWT_SECRET", "QUILT_MCP_JWKS"])
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn bad_values_are_reported() {
        let c = config(&[
            ("QUILT_MCP_JWT_LEEWAY_SECS", "soon"),
            ("QUILT_MCP_READ_ONLY", "maybe"),
        ]);
        assert_eq!(c.leeway_secs, 30);
        let vars: Vec<_> = c.errors.iter().map(|e| e.variable).collect();
        assert_eq!(vars, ["QUILT_MCP_JWT_LEEWAY_SECS", "QUILT_MCP_READ_ONLY"]);
        assert!(config(&[("QUILT_MCP_READ_ONLY", "TRUE")]).read_only);
    }

    #[test]
    fn read_only_fails_closed() {
        for (value, on, error) in [
            ("true", true, false),
            (" TRUE ", true, false),
            ("false", false, false),
            ("False", false, false),
            ("", false, false),
            ("tru", true, true),
            ("maybe", true, true),
            ("1", true, true),
            ("0", true, true),
            ("no", true, true),
        ] {
            let c = config(&[("QUILT_MCP_READ_ONLY", value)]);
            assert_eq!(
                (c.read_only, !c.errors.is_empty()),
                (on, error),
                "{value:?}"
            );
        }
        assert!(!config(&[]).read_only);
        let c = config(&[("QUILT_MCP_READ_ONLY", "tru")]);
        assert!(
            c.errors[0].to_string().contains("read-only mode is on"),
            "{:?}",
            c.errors
        );
    }

    /// Unset or `all` offers everything; a name that is not a toolset fails closed:
    /// an error, and only the toolsets that were named correctly.
    #[test]
    fn toolsets_fail_closed() {
        use Toolset::{Buckets, Packages, Search};
        for (value, offered, error) in [
            (None, vec![Buckets, Packages, Search], false),
            (Some("all"), vec![Buckets, Packages, Search], false),
            (Some(" ALL "), vec![Buckets, Packages, Search], false),
            (Some("buckets"), vec![Buckets], false),
            (Some("packages, search"), vec![Packages, Search], false),
            (Some("buckets,all"), vec![Buckets, Packages, Search], false),
            (Some("buckets,,"), vec![Buckets], false),
            (Some("bukets"), vec![], true),
            (Some("packages,serch"), vec![Packages], true),
            (Some("core"), vec![], true),
        ] {
            let mut vars = Vec::new();
            if let Some(value) = value {
                vars.push(("QUILT_MCP_TOOLSETS", value));
            }
            let c = config(&vars);
            let got: Vec<Toolset> = [Buckets, Packages, Search]
                .into_iter()
                .filter(|t| c.toolsets.offers(*t))
                .collect();
            assert_eq!((got, !c.errors.is_empty()), (offered, error), "{value:?}");
            assert!(c.toolsets.offers(Toolset::Core));
        }
        let c = config(&[("QUILT_MCP_TOOLSETS", "bukets")]);
        assert_eq!(c.errors[0].variable, "QUILT_MCP_TOOLSETS");
        assert!(
            c.errors[0]
                .problem
                .contains("offering only none (auth_status only)"),
            "{}",
            c.errors[0]
        );
        // A placeholder (an MCP bundle's empty field) is unset: everything.
        let c = config(&[("QUILT_MCP_TOOLSETS", "${user_config.toolsets}")]);
        assert_eq!((c.toolsets, c.errors.len()), (Toolsets::ALL, 0));
    }

    #[test]
    fn public_url_is_checked() {
        for (value, expected) in [
            ("https://mcp.example.com", Some("https://mcp.example.com")),
            ("https://mcp.example.com/", Some("https://mcp.example.com")),
            (
                "http://127.0.0.1:8080/quilt/",
                Some("http://127.0.0.1:8080/quilt"),
            ),
            ("mcp.example.com", None),
            ("ftp://mcp.example.com", None),
            ("https://user:pw@mcp.example.com", None),
            ("https://mcp.example.com/?a=b", None),
            ("https://mcp.example.com/#x", None),
            ("https://", None),
            ("https://mcp.example.com\"/x", None),
        ] {
            let c = config(&[("QUILT_MCP_PUBLIC_URL", value)]);
            assert_eq!(c.public_url.as_deref(), expected, "{value:?}");
            assert_eq!(c.errors.is_empty(), expected.is_some(), "{value:?}");
        }
        assert!(config(&[]).public_url.is_none());
    }

    #[test]
    fn placeholders_are_unset_but_a_key_placeholder_is_an_error() {
        let c = config(&[
            ("QUILT_MCP_TOKEN", "${user_config.token}"),
            ("QUILT_CATALOG_URL", "${user_config.catalog_url}"),
            ("QUILT_REGISTRY_URL", " <registry URL> "),
            ("QUILT_MCP_READ_ONLY", "${user_config.read_only}"),
        ]);
        assert!(c.token.is_none());
        assert!(c.catalog_url.is_none());
        assert!(c.registry_url.is_none());
        assert!(!c.read_only);
        assert!(c.errors.is_empty(), "{:?}", c.errors);

        let c = config(&[
            ("QUILT_MCP_JWT_SECRET", "${user_config.jwt_secret}"),
            ("QUILT_MCP_JWKS", "/k.json"),
        ]);
        assert_eq!(c.key.kind(), "placeholder");
        let vars: Vec<_> = c.errors.iter().map(|e| e.variable).collect();
        assert_eq!(vars, ["QUILT_MCP_JWT_SECRET"]);
        assert!(c.errors[0].problem.contains("${user_config.jwt_secret}"));
        assert_eq!(
            config(&[("QUILT_MCP_JWT_PUBLIC_KEY", "<path to the PEM public key>")])
                .key
                .kind(),
            "placeholder"
        );
        assert!(!is_placeholder("eyJ.abc.def"));
        assert!(!is_placeholder("$HOME/key.pem"));
    }

    #[test]
    fn a_log_filter_that_does_not_parse_is_an_error() {
        for (value, filter, error) in [
            ("debug", "debug", false),
            ("quilt_mcp=debug,info", "quilt_mcp=debug,info", false),
            ("nonsense=[", "info", true),
            ("info,=", "info", true),
        ] {
            let c = config(&[("QUILT_MCP_LOG", value)]);
            assert_eq!(c.log_filter, filter, "{value:?}");
            assert_eq!(
                c.errors.iter().any(|e| e.variable == "QUILT_MCP_LOG"),
                error,
                "{value:?}: {:?}",
                c.errors
            );
        }
    }

    #[test]
    fn log_target_is_file_or_stderr() {
        assert_eq!(config(&[]).log_target, LogTarget::File);
        assert_eq!(
            config(&[("QUILT_MCP_LOG_TARGET", "stderr")]).log_target,
            LogTarget::Stderr
        );
        let c = config(&[("QUILT_MCP_LOG_TARGET", "syslog")]);
        assert_eq!(c.log_target, LogTarget::File);
        assert_eq!(c.errors[0].variable, "QUILT_MCP_LOG_TARGET");
    }

    #[test]
    fn ambient_aws_credentials_are_not_read() {
        let seen = std::cell::RefCell::new(Vec::new());
        let _ = Config::from_lookup(|k| {
            seen.borrow_mut().push(k.to_owned());
            None
        });
        for forbidden in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ] {
            assert!(
                !seen.borrow().iter().any(|k| k == forbidden),
                "{forbidden} was read"
            );
        }
    }
}
