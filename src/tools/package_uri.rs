//! `quilt+s3://` URIs, the catalog's form of a package, a revision or a file in one
//! (docs/reference.md, Tools): `quilt+s3://BUCKET#package=NS/NAME[@TOP_HASH|:TAG][&path=PATH]`.
//!
//! Parsed as the Quilt catalog parses the URIs it makes and resolves: the scheme is
//! `quilt+s3`, the registry is the bucket root (no path, no query), the fragment is a
//! form-encoded list of parameters (`+` is a space, `%XX` is a byte, a parameter without
//! `=` is empty) in which `package` appears exactly once and `path` at most once, and
//! every other parameter (`catalog`, …) is ignored; `package` holds the name and either
//! `@` and a top hash or `:` and a tag, never both. On top of that the parts are checked
//! as the tools check them: the bucket name, the package name, a top hash or a unique
//! prefix of at least 6 hex digits, the only tag a registry has (`latest`), and a path
//! that is an S3 name. A [`PackageUri`] argument is checked once, in the gate's parse.

use serde::Deserialize;

use super::policy;
use super::uri::{Bucket, check_s3_name, short, string_argument};
use super::{
    Access, Call, ErrorCode, GET_OBJECT, GET_OBJECT_VERSION, LIST_BUCKET, ToolError, ToolInfo,
    cancellable,
};
use crate::error::ArgumentError;
use crate::quilt::browse::PageRequest;
use crate::quilt::cache;
use crate::quilt::registry::Registry;
use crate::quilt::{HashPrefix, PackageName};
use crate::s3::S3Uri;
use crate::s3::uri::check_bucket_name;

/// The longest `quilt+s3://` URI accepted, in bytes: a bucket, a package name, a top
/// hash and a path of S3's longest key, percent-encoded.
pub(crate) const MAX_URI_BYTES: usize = 8 * 1024;

/// The scheme, compared without regard to case (as URL schemes are).
const SCHEME: &str = "quilt+s3";

/// The tag every package has: its `latest` pointer.
const LATEST: &str = "latest";

/// A `quilt+s3://` URI argument, checked as it is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct PackageUri {
    /// The registry bucket.
    pub(crate) bucket: String,
    /// The package.
    pub(crate) name: PackageName,
    /// The revision: `None` for `latest` (no hash, or the tag `:latest`).
    pub(crate) top_hash: Option<HashPrefix>,
    /// The path in the package (decoded, without leading or trailing `/`); `None`
    /// when absent or empty.
    pub(crate) path: Option<String>,
}
string_argument!(PackageUri);

impl TryFrom<String> for PackageUri {
    type Error = ArgumentError;
    fn try_from(text: String) -> Result<PackageUri, ArgumentError> {
        PackageUri::parse(&text).map_err(|e| e.context(format_args!("`uri` {:?}", short(&text))))
    }
}

/// What a `quilt+s3://` URI's fragment says, before the parts are checked.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fragment {
    package: Option<String>,
    path: Option<String>,
}

impl PackageUri {
    /// Parses `quilt+s3://BUCKET#package=NS/NAME[@TOP_HASH|:TAG][&path=PATH]`.
    pub(crate) fn parse(text: &str) -> Result<PackageUri, ArgumentError> {
        if text.len() > MAX_URI_BYTES {
            return Err(ArgumentError::new(format!(
                "it is {} bytes long; a quilt+s3:// URI is at most {MAX_URI_BYTES} bytes",
                text.len()
            )));
        }
        let text = text.trim();
        let (scheme, rest) = text.split_once(':').ok_or_else(|| {
            ArgumentError::new("it is not a quilt+s3:// URI (quilt+s3://BUCKET#package=NS/NAME)")
        })?;
        if !scheme.eq_ignore_ascii_case(SCHEME) {
            return Err(ArgumentError::new(format!(
                "the scheme is {:?}; quilt+s3 is the only one supported (quilt+s3://BUCKET#package=NS/NAME)",
                short(scheme)
            )));
        }
        let Some(rest) = rest.strip_prefix("//") else {
            return Err(ArgumentError::new(
                "the slashes between the scheme and the bucket are missing (quilt+s3://BUCKET)",
            ));
        };
        let (registry, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let end = registry.find(['/', '?']).unwrap_or(registry.len());
        let (bucket, after) = registry.split_at(end);
        if !after.is_empty() {
            return Err(ArgumentError::new(
                "the registry must be a bucket root: nothing may follow the bucket before `#`",
            ));
        }
        check_bucket_name(bucket)?;
        let Fragment { package, path } = Fragment::parse(fragment)?;
        let Some(package) = package.filter(|p| !p.is_empty()) else {
            return Err(ArgumentError::new(
                "it has no `package=` part (quilt+s3://BUCKET#package=NS/NAME)",
            ));
        };
        let (name, top_hash) = package_spec(&package)?;
        let path = match path.as_deref().map(|p| p.trim_matches('/')) {
            None | Some("") => None,
            Some(path) => {
                check_s3_name("`path`", path)?;
                Some(path.to_owned())
            }
        };
        Ok(PackageUri {
            bucket: bucket.to_owned(),
            name,
            top_hash,
            path,
        })
    }

    /// What reading the revision it names touches: `s3:GetObject` on the registry,
    /// and `s3:ListBucket` to resolve a hash prefix.
    pub(crate) fn access(&self) -> Access {
        let mut access = Access::needs(&[GET_OBJECT]).bucket(&self.bucket);
        if self.top_hash.as_ref().is_some_and(|h| !h.is_full()) {
            access.also_needs(LIST_BUCKET);
        }
        access
    }
}

/// The package a call names, given as a `uri`, as `registry` and `package_name` (with
/// `top_hash` and `path`), or both when they agree: the one checked in the gate's parse.
#[derive(Debug, Default)]
pub(crate) struct Named {
    /// `registry`.
    pub(crate) registry: Option<Bucket>,
    /// `package_name`.
    pub(crate) package_name: Option<PackageName>,
    /// `top_hash`.
    pub(crate) top_hash: Option<HashPrefix>,
    /// `path`.
    pub(crate) path: Option<String>,
}

impl Named {
    /// The package `uri` and these arguments name together. Each part given both ways
    /// must agree (a top hash agrees with a prefix of it; the longer is kept); without
    /// a `uri`, `registry` and `package_name` are required.
    pub(crate) fn with(self, uri: Option<PackageUri>) -> Result<PackageUri, ArgumentError> {
        let trim = |p: String| {
            let p = p.trim_matches('/');
            (!p.is_empty()).then(|| p.to_owned())
        };
        let path = self.path.and_then(trim);
        let Some(uri) = uri else {
            let (Some(registry), Some(name)) = (self.registry, self.package_name) else {
                return Err(ArgumentError::new(
                    "name the package with `registry` and `package_name`, or with `uri` (quilt+s3://BUCKET#package=NS/NAME)",
                ));
            };
            if let Some(path) = &path {
                check_s3_name("`path`", path)?;
            }
            return Ok(PackageUri {
                bucket: registry.name().to_owned(),
                name,
                top_hash: self.top_hash,
                path,
            });
        };
        let disagree = |what: &str, given: &str, in_uri: &str| {
            ArgumentError::new(format!(
                "`{what}` is {:?} but `uri` names {:?}; give one of them, or the same in both",
                short(given),
                short(in_uri)
            ))
        };
        if let Some(registry) = &self.registry
            && registry.name() != uri.bucket
        {
            return Err(disagree("registry", registry.name(), &uri.bucket));
        }
        if let Some(name) = &self.package_name
            && name != &uri.name
        {
            return Err(disagree("package_name", name.as_str(), uri.name.as_str()));
        }
        let top_hash = match (self.top_hash, uri.top_hash) {
            (Some(given), Some(in_uri)) => {
                let (g, u) = (given.as_str(), in_uri.as_str());
                if g.starts_with(u) {
                    Some(given)
                } else if u.starts_with(g) {
                    Some(in_uri)
                } else {
                    return Err(disagree("top_hash", g, u));
                }
            }
            (given, in_uri) => given.or(in_uri),
        };
        let path = match (path, uri.path) {
            (Some(given), Some(in_uri)) if given != in_uri => {
                return Err(disagree("path", &given, &in_uri));
            }
            (given, in_uri) => given.or(in_uri),
        };
        Ok(PackageUri {
            bucket: uri.bucket,
            name: uri.name,
            top_hash,
            path,
        })
    }
}

/// The physical object of the file `uri` names (its `path`, in its revision or
/// `latest`), read from the revision's verified manifest as `package_browse` reads it,
/// and authorized for the bucket it is in by the gate's own policy (the gate
/// authorized the registry; the object may be anywhere): a bucket the token lacks is
/// `access_denied`. A path that is a directory is `invalid_argument`, a missing one
/// `not_found`.
pub(crate) async fn physical_object(
    call: &Call<'_>,
    tool: &ToolInfo,
    uri: &PackageUri,
) -> Result<S3Uri, ToolError> {
    let path = uri.path.as_deref().unwrap_or("");
    let name = uri.name.as_str();
    let registry = Registry::new(call.s3()?, &uri.bucket);
    let top_hash = cancellable(call.cancel, registry.resolve(name, uri.top_hash.as_ref())).await?;
    let request = PageRequest {
        path: path.to_owned(),
        after: None,
        max_entries: 1,
        max_directories: 0,
    };
    let browsed = cancellable(
        call.cancel,
        cache::page(&registry, &top_hash, &request, None),
    )
    .await?;
    let revision = || format!("{name}@{top_hash} in s3://{}", uri.bucket);
    let entry = match browsed.page.entries.into_iter().next() {
        Some(entry) if entry.logical_key == path => entry,
        Some(_) => {
            return Err(ToolError::invalid(format!(
                "`path` {:?} is a directory of package {} ({} entries), not a file; name one of its files (package_browse lists them)",
                short(path),
                revision(),
                browsed.summary.entry_count
            )));
        }
        None => {
            return Err(ToolError::new(
                ErrorCode::NotFound,
                format!(
                    "package {} has no entry {:?}; package_browse lists its entries",
                    revision(),
                    short(path)
                ),
            ));
        }
    };
    let physical = entry.physical_key.unwrap_or_default();
    let object = S3Uri::parse_object(&physical).map_err(|_| {
        ToolError::new(
            ErrorCode::NotSupported,
            format!(
                "entry {:?} of package {} is stored at {:?}, not in an S3 object this server can read",
                short(path),
                revision(),
                short(&physical)
            ),
        )
    })?;
    // The second check: the object's own bucket, through the gate's policy.
    let mut access = Access::needs(&[GET_OBJECT]).bucket(&object.bucket);
    if object.version_id.is_some() {
        access.also_needs(GET_OBJECT_VERSION);
    }
    if let Err(denial) = policy::authorize(tool, &access, &call.ctx.claims, call.read_only) {
        return Err(ToolError::new(
            ErrorCode::AccessDenied,
            format!(
                "entry {:?} of package {} is stored in bucket {:?}: {}",
                short(path),
                revision(),
                object.bucket,
                denial.message()
            ),
        ));
    }
    Ok(object)
}

impl Fragment {
    /// The fragment's parameters, form-decoded: `package` exactly once (checked by the
    /// caller), `path` at most once, the others ignored.
    fn parse(fragment: &str) -> Result<Fragment, ArgumentError> {
        let mut out = Fragment::default();
        for pair in fragment.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = form_decode(key)?;
            let slot = match key.as_str() {
                "package" => &mut out.package,
                "path" => &mut out.path,
                _ => continue,
            };
            if slot.is_some() {
                return Err(ArgumentError::new(format!(
                    "`{key}=` is given more than once"
                )));
            }
            *slot = Some(form_decode(value)?);
        }
        Ok(out)
    }
}

/// A form-encoded fragment value decoded: `+` is a space, `%XX` a byte (a `%` not
/// followed by two hex digits stays as it is), and the bytes must be UTF-8.
fn form_decode(text: &str) -> Result<String, ArgumentError> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| ArgumentError::new("a fragment parameter is not UTF-8 once percent-decoded"))
}

/// `NS/NAME`, `NS/NAME@TOP_HASH` or `NS/NAME:TAG`.
fn package_spec(spec: &str) -> Result<(PackageName, Option<HashPrefix>), ArgumentError> {
    if spec.contains(':') && spec.contains('@') {
        return Err(ArgumentError::new(
            "`package=` may hold `@TOP_HASH` or `:TAG`, not both",
        ));
    }
    let (name, revision) = if let Some((name, tag)) = spec.split_once(':') {
        if tag.contains(':') {
            return Err(ArgumentError::new("`package=` may hold only one `:`"));
        }
        if tag.is_empty() {
            return Err(ArgumentError::new("`package=`: the tag after `:` is empty"));
        }
        if tag != LATEST {
            return Err(ArgumentError::new(format!(
                "`package=`: the tag {:?} does not exist; a registry has only `:latest`, and any other revision is named by its top hash (`@TOP_HASH`)",
                short(tag)
            )));
        }
        (name, None)
    } else if let Some((name, hash)) = spec.split_once('@') {
        if hash.contains('@') {
            return Err(ArgumentError::new("`package=` may hold only one `@`"));
        }
        if hash.is_empty() {
            return Err(ArgumentError::new(
                "`package=`: the hash after `@` is empty",
            ));
        }
        let hash = HashPrefix::try_from(hash.to_owned()).map_err(|e| e.context("`package=`"))?;
        (name, Some(hash))
    } else {
        (spec, None)
    };
    if name.is_empty() {
        return Err(ArgumentError::new("`package=`: the package name is empty"));
    }
    let name = PackageName::try_from(name.to_owned()).map_err(|e| e.context("`package=`"))?;
    Ok((name, revision))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "e21682f00929661879633a5128aaa27cc7bc1e2973d49d4c868a90f9fad9f34b";

    /// (bucket, name, top hash, path) of a URI that parses.
    fn parts(text: &str) -> (String, String, Option<String>, Option<String>) {
        let uri = PackageUri::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (
            uri.bucket,
            uri.name.into_string(),
            uri.top_hash.map(|h| h.as_str().to_owned()),
            uri.path,
        )
    }

    #[test]
    fn the_catalogs_uris_parse() {
        let s = |t: &str| t.to_owned();
        let cases = [
            (
                "quilt+s3://bucket-name#package=quilt/test",
                ("bucket-name", "quilt/test", None, None),
            ),
            (
                "quilt+s3://bucket-name#package=quilt/test:latest",
                ("bucket-name", "quilt/test", None, None),
            ),
            (
                "quilt+s3://bucket-name#package=quilt/test@abc123&path=sub%2Fpath",
                (
                    "bucket-name",
                    "quilt/test",
                    Some(s("abc123")),
                    Some(s("sub/path")),
                ),
            ),
            (
                &format!(
                    "quilt+s3://quilt-example#package=akarve/cord19@{HASH}&path=CORD19.ipynb&catalog=open.quiltdata.com"
                ),
                (
                    "quilt-example",
                    "akarve/cord19",
                    Some(s(HASH)),
                    Some(s("CORD19.ipynb")),
                ),
            ),
            // Hash prefixes are lowercased; `+` is a space; `%25` a percent sign.
            (
                "quilt+s3://b#package=a/b@ABCDEF0&path=dir/100%25+done.csv",
                ("b", "a/b", Some(s("abcdef0")), Some(s("dir/100% done.csv"))),
            ),
            // The order of the parameters, empty ones, unknown ones, a directory path.
            (
                "quilt+s3://b#path=data/&&x=1&package=ns/n&catalog=c.example",
                ("b", "ns/n", None, Some(s("data"))),
            ),
            ("quilt+s3://b#package=ns/n&path=", ("b", "ns/n", None, None)),
            ("QUILT+S3://b#package=ns/n", ("b", "ns/n", None, None)),
            // A percent-encoded package name, Unicode in names and paths.
            (
                "quilt+s3://b#package=ns%2Fn%C3%A9&path=r%C3%A9sum%C3%A9.md",
                ("b", "ns/né", None, Some(s("résumé.md"))),
            ),
            // A `%` not followed by two hex digits stays as it is.
            (
                "quilt+s3://b#package=a/b&path=50%",
                ("b", "a/b", None, Some(s("50%"))),
            ),
        ];
        for (text, (bucket, name, hash, path)) in cases {
            assert_eq!(parts(text), (s(bucket), s(name), hash, path), "{text}");
        }
    }

    #[test]
    fn what_it_refuses_it_says_why() {
        let cases = [
            ("s3://b#package=a/b", "scheme"),
            ("quilt+http://b#package=a/b", "scheme"),
            ("quilt+s3:b#package=a/b", "slashes"),
            ("quilt+s3://b", "no `package=`"),
            ("quilt+s3://b#pacakge=a/b", "no `package=`"),
            ("quilt+s3://b#package=", "no `package=`"),
            ("quilt+s3://b/sub/path#package=a/b", "bucket root"),
            ("quilt+s3://b/#package=a/b", "bucket root"),
            ("quilt+s3://b?x=1#package=a/b", "bucket root"),
            ("quilt+s3://#package=a/b", "bucket name is empty"),
            ("quilt+s3://b:80#package=a/b", "contains ':'"),
            ("quilt+s3://b#package=a/b&package=a/c", "more than once"),
            ("quilt+s3://b#package=a/b&path=x&path=y", "more than once"),
            ("quilt+s3://b#package=a/b:", "tag after `:` is empty"),
            ("quilt+s3://b#package=a/b:latest:x", "only one `:`"),
            ("quilt+s3://b#package=a/b:v1", "only `:latest`"),
            ("quilt+s3://b#package=a/b@", "hash after `@` is empty"),
            ("quilt+s3://b#package=a/b@abcdef@abcdef", "only one `@`"),
            ("quilt+s3://b#package=a/b:latest@abcdef", "not both"),
            ("quilt+s3://b#package=a/b@abc", "6 to 64 hex digits"),
            ("quilt+s3://b#package=a/b@xyzxyzxyz", "6 to 64 hex digits"),
            ("quilt+s3://b#package=@abcdef", "package name is empty"),
            ("quilt+s3://b#package=ab", "not a package name"),
            ("quilt+s3://b#package=a/b/c", "not a package name"),
            ("quilt+s3://b#package=a/b&path=%FF", "not UTF-8"),
            ("quilt+s3://b#package=a/b&path=a%00b", "NUL"),
        ];
        for (text, why) in cases {
            let error = PackageUri::try_from(text.to_owned())
                .err()
                .unwrap_or_else(|| panic!("{text} parsed"))
                .to_string();
            assert!(error.contains(why), "{text}: {error}");
            assert!(error.starts_with("`uri` "), "{text}: {error}");
        }
        let long = format!(
            "quilt+s3://b#package=a/b&path={}",
            "k".repeat(MAX_URI_BYTES)
        );
        assert!(PackageUri::parse(&long).is_err());
        let key = format!("quilt+s3://b#package=a/b&path={}", "k".repeat(1025));
        assert!(
            PackageUri::parse(&key)
                .unwrap_err()
                .to_string()
                .contains("1024")
        );
    }

    #[test]
    fn access_is_the_registrys() {
        let uri = PackageUri::parse("quilt+s3://reg#package=a/b@abcdef&path=x").unwrap();
        assert_eq!(
            uri.access(),
            Access::needs(&[GET_OBJECT, LIST_BUCKET]).bucket("reg")
        );
        let uri = PackageUri::parse(&format!("quilt+s3://reg#package=a/b@{HASH}")).unwrap();
        assert_eq!(uri.access(), Access::needs(&[GET_OBJECT]).bucket("reg"));
    }
}
