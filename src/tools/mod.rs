//! The tools: each one a type implementing [`Tool`], which is the one description of
//! it: name, annotations, whether it writes, its typed parameters (which say the
//! buckets and S3 permissions a call touches, [`Params::access`]), its typed result,
//! and the operation itself.
//!
//! Tools never check authorization: by the time [`Tool::run`] is called, the gate in
//! [`crate::server`] has verified the token, parsed the arguments into
//! [`Tool::Params`] and authorized exactly the [`Access`] they declare
//! ([`policy::authorize`]). Nothing here knows MCP.
//!
//! Adding a tool is one file (its parameters, result and operation) plus its line in
//! [`register`]; everything else (the MCP description, the gate, `tools/list`, the
//! tests' lists of tools and writes) is derived from that line.

pub(crate) mod auth;
pub(crate) mod buckets;
pub(crate) mod package_uri;
pub(crate) mod packages;
pub(crate) mod patch;
pub(crate) mod policy;
pub(crate) mod revisions;
pub(crate) mod search;
pub(crate) mod search_objects;
pub(crate) mod search_packages;
pub(crate) mod uri;

use std::future::Future;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::auth::AuthContext;
use crate::aws::AwsSession;
pub(crate) use crate::config::Toolset;
pub(crate) use crate::error::{ErrorCode, ToolError};
use crate::quilt::publish::Progress;
use crate::registry::RegistryClient;

/// Every tool the server offers: the one table. Adding a tool is one line here.
pub(crate) fn register(tools: &mut impl Register) {
    tools.add::<auth::AuthStatus>();
    tools.add::<buckets::BucketList>();
    tools.add::<buckets::BucketObjectsList>();
    tools.add::<buckets::BucketObjectInfo>();
    tools.add::<buckets::BucketObjectText>();
    tools.add::<buckets::BucketObjectFetch>();
    tools.add::<buckets::BucketObjectLink>();
    tools.add::<buckets::BucketObjectsPut>();
    tools.add::<packages::PackageList>();
    tools.add::<packages::PackageBrowse>();
    tools.add::<packages::PackageDiff>();
    tools.add::<packages::PackageCreate>();
    tools.add::<patch::PackagePatch>();
    tools.add::<revisions::PackageRevisions>();
    tools.add::<search_packages::SearchPackages>();
    tools.add::<search_objects::SearchObjects>();
}

/// What [`register`] fills: the server's table of tools (or a test's list).
pub(crate) trait Register {
    /// Adds the tool `T`.
    fn add<T: Tool>(&mut self);
}

/// A request the gate can authorize: the buckets and permissions it touches, known
/// once its arguments are parsed. A tool call is one; a resource read or a completion
/// is to be one too, authorized under the rules of the tool call it stands for.
pub(crate) trait Declared {
    /// What the request touches.
    fn access(&self) -> &Access;
}

impl<D: Declared + ?Sized> Declared for Box<D> {
    fn access(&self) -> &Access {
        (**self).access()
    }
}

pub(crate) use crate::s3::Permission;

/// `s3:GetObject`.
pub(crate) const GET_OBJECT: Permission = Permission::GetObject;
/// `s3:GetObjectVersion`.
pub(crate) const GET_OBJECT_VERSION: Permission = Permission::GetObjectVersion;
/// `s3:PutObject`.
pub(crate) const PUT_OBJECT: Permission = Permission::PutObject;
/// `s3:ListBucket`.
pub(crate) const LIST_BUCKET: Permission = Permission::ListBucket;

/// What a tool is, for the host (MCP annotations) and for the gate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ToolInfo {
    /// The tool's name (docs/reference.md, Tools).
    pub(crate) name: &'static str,
    /// The toolset it belongs to (docs/reference.md, Settings: `QUILT_MCP_TOOLSETS`):
    /// a tool outside the server's toolsets is neither listed nor callable.
    pub(crate) toolset: Toolset,
    /// A short human title.
    pub(crate) title: &'static str,
    /// What it does and when to use it, for the model.
    pub(crate) description: &'static str,
    /// It only reads (`readOnlyHint`). A tool that writes is refused for a token of
    /// level `read` and in read-only mode, where it is also hidden.
    pub(crate) read_only: bool,
    /// It may destroy data (`destructiveHint`).
    pub(crate) destructive: bool,
    /// Calling it twice does what calling it once does (`idempotentHint`).
    pub(crate) idempotent: bool,
    /// It reaches AWS or the Quilt registry (`openWorldHint`): the gate gets the
    /// caller's AWS credentials before it runs, unless it is a `registry` tool.
    pub(crate) open_world: bool,
    /// It calls the Quilt registry's API (search) instead of AWS: offered only when
    /// `QUILT_REGISTRY_URL` is set, and run with the registry client rather than AWS
    /// credentials.
    pub(crate) registry: bool,
}

impl ToolInfo {
    /// A tool of `toolset` that reads S3: read-only, idempotent, not destructive,
    /// reaching AWS.
    pub(crate) const fn reads(
        toolset: Toolset,
        name: &'static str,
        title: &'static str,
        description: &'static str,
    ) -> ToolInfo {
        ToolInfo {
            name,
            toolset,
            title,
            description,
            read_only: true,
            destructive: false,
            idempotent: true,
            open_world: true,
            registry: false,
        }
    }

    /// A tool of the `search` toolset that reads through the Quilt registry's API:
    /// read-only, idempotent, not destructive, reaching the registry (not AWS).
    pub(crate) const fn searches(
        name: &'static str,
        title: &'static str,
        description: &'static str,
    ) -> ToolInfo {
        ToolInfo {
            registry: true,
            ..ToolInfo::reads(Toolset::Search, name, title, description)
        }
    }

    /// Whether the tool writes.
    pub(crate) const fn writes(&self) -> bool {
        !self.read_only
    }
}

/// What one call touches: the buckets it names and the S3 permissions it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Access {
    /// The buckets, in argument order, without repeats.
    pub(crate) buckets: Vec<String>,
    /// The permissions, without repeats.
    pub(crate) permissions: Vec<Permission>,
}

impl Access {
    /// Needs `permissions` on every bucket it names.
    pub(crate) fn needs(permissions: &[Permission]) -> Access {
        let mut access = Access::default();
        for p in permissions {
            access.also_needs(*p);
        }
        access
    }

    /// Adds a bucket.
    pub(crate) fn bucket(mut self, name: &str) -> Access {
        if !self.buckets.iter().any(|b| b == name) {
            self.buckets.push(name.to_owned());
        }
        self
    }

    /// Adds a permission.
    pub(crate) fn also_needs(&mut self, permission: Permission) {
        if !self.permissions.contains(&permission) {
            self.permissions.push(permission);
        }
    }
}

/// A tool's parameters, parsed once from the call's arguments.
pub(crate) trait Params: DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The buckets and permissions a call with these parameters touches.
    fn access(&self) -> Access;
}

/// Everything a tool may use besides its parameters, handed over by the gate.
pub(crate) struct Call<'a> {
    /// The verified caller.
    pub(crate) ctx: &'a AuthContext,
    /// The caller's AWS session, for the tools that reach AWS.
    pub(crate) aws: Option<&'a AwsSession>,
    /// The Quilt registry, when `QUILT_REGISTRY_URL` is set.
    pub(crate) registry: Option<&'a RegistryClient>,
    /// `QUILT_CATALOG_URL`, without a trailing `/`, for `catalog_url` links.
    pub(crate) catalog_url: Option<&'a str>,
    /// The region when the token names none.
    pub(crate) default_region: &'a str,
    /// Read-only mode.
    pub(crate) read_only: bool,
    /// Where long operations report progress.
    pub(crate) progress: &'a dyn Progress,
    /// Cancelled when the client cancels the call.
    pub(crate) cancel: &'a CancellationToken,
}

impl Call<'_> {
    /// The caller's S3 client.
    pub(crate) fn s3(&self) -> Result<&aws_sdk_s3::Client, ToolError> {
        self.session().map(|session| &session.s3)
    }

    /// The Quilt registry.
    pub(crate) fn registry(&self) -> Result<&RegistryClient, ToolError> {
        self.registry.ok_or_else(|| {
            ToolError::new(
                ErrorCode::NotSupported,
                "this server has no Quilt registry: QUILT_REGISTRY_URL is not set",
            )
        })
    }

    /// The caller's AWS session.
    pub(crate) fn session(&self) -> Result<&AwsSession, ToolError> {
        self.aws.ok_or_else(|| {
            ToolError::new(
                ErrorCode::InternalError,
                "the tool reaches AWS but the call carries no AWS session",
            )
        })
    }
}

/// Runs `work` until it ends or the client cancels the call; then `work` is dropped:
/// its S3 reads stop and its temporary files are closed (they are unnamed, so gone).
pub(crate) async fn cancellable<T, E: Into<ToolError>>(
    cancel: &tokio_util::sync::CancellationToken,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ToolError> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => Err(ToolError::from(crate::quilt::error::QuiltError::Cancelled)),
        result = work => result.map_err(Into::into),
    }
}

/// Binary content a result carries besides its structured form (an embedded resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blob {
    /// The object's URI.
    pub(crate) uri: String,
    /// Its content type.
    pub(crate) mime_type: String,
    /// The bytes, standard base64.
    pub(crate) base64: String,
}

/// One tool: the single place that describes it.
pub(crate) trait Tool: Send + Sync + 'static {
    /// Name, title, description and annotations.
    const INFO: ToolInfo;
    /// The parameters.
    type Params: Params;
    /// The structured result.
    type Output: Serialize + JsonSchema + Send + 'static;

    /// The arguments of a plain call, touching bucket `b` (and `src` for a source):
    /// the gate's tests run every tool's policy from it.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "the gate's tests derive their calls from it")
    )]
    fn example() -> serde_json::Value;

    /// Runs the tool for an authorized call.
    fn run(
        call: Call<'_>,
        params: Self::Params,
    ) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;

    /// The text content of a successful result, when it should not be the JSON of
    /// the structured result.
    fn summary(_output: &Self::Output) -> Option<String> {
        None
    }

    /// Binary content the result carries as an embedded resource.
    fn blob(_output: &Self::Output) -> Option<Blob> {
        None
    }
}

/// No parameters.
#[derive(Debug, Default, serde::Deserialize, JsonSchema)]
pub(crate) struct NoParams {}

impl Params for NoParams {
    fn access(&self) -> Access {
        Access::default()
    }
}
