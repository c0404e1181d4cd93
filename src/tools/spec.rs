//! What every tool of SPEC §6 needs, as data, in one place. The gate reads this table;
//! tools built in later issues only add their handlers.

/// An S3 action.
pub type Permission = &'static str;

/// `s3:GetObject`.
pub const GET_OBJECT: Permission = "s3:GetObject";
/// `s3:GetObjectVersion`.
pub const GET_OBJECT_VERSION: Permission = "s3:GetObjectVersion";
/// `s3:PutObject`.
pub const PUT_OBJECT: Permission = "s3:PutObject";
/// `s3:ListBucket`.
pub const LIST_BUCKET: Permission = "s3:ListBucket";

/// An argument that names a bucket the call touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketArg {
    /// A bucket name or `s3://name` (required).
    Name(&'static str),
    /// An object URI `s3://bucket/key` (required).
    ObjectUri(&'static str),
    /// An optional array of objects, each with a URI field: `(array, field)`.
    EntryUris(&'static str, &'static str),
    /// An optional array of URIs.
    UriList(&'static str),
}

/// A permission needed only for some argument values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    /// Nothing more.
    None,
    /// `s3:GetObjectVersion` when the object URI argument carries `?versionId=`.
    VersionIdNeeds(Permission),
    /// `s3:ListBucket` when `top_hash` is given as a prefix shorter than 64 characters.
    HashPrefixNeeds(Permission),
}

/// One tool's requirements.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    /// The tool's name.
    pub name: &'static str,
    /// S3 permissions every call needs.
    pub permissions: &'static [Permission],
    /// Permissions some calls need.
    pub conditional: Conditional,
    /// The arguments that name buckets.
    pub buckets: &'static [BucketArg],
    /// Whether the tool writes (refused for level `read` and in read-only mode).
    pub writes: bool,
    /// Whether the tool needs AWS credentials (SPEC §5).
    pub needs_aws: bool,
}

const fn read(
    name: &'static str,
    permissions: &'static [Permission],
    conditional: Conditional,
    buckets: &'static [BucketArg],
) -> ToolSpec {
    ToolSpec {
        name,
        permissions,
        conditional,
        buckets,
        writes: false,
        needs_aws: true,
    }
}

/// Every tool of SPEC §6.
pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "auth_status",
        permissions: &[],
        conditional: Conditional::None,
        buckets: &[],
        writes: false,
        needs_aws: false,
    },
    ToolSpec {
        name: "bucket_list",
        permissions: &[],
        conditional: Conditional::None,
        buckets: &[],
        writes: false,
        needs_aws: false,
    },
    read(
        "bucket_objects_list",
        &[LIST_BUCKET],
        Conditional::None,
        &[BucketArg::Name("bucket")],
    ),
    read(
        "bucket_object_info",
        &[GET_OBJECT],
        Conditional::VersionIdNeeds(GET_OBJECT_VERSION),
        &[BucketArg::ObjectUri("s3_uri")],
    ),
    read(
        "bucket_object_text",
        &[GET_OBJECT],
        Conditional::VersionIdNeeds(GET_OBJECT_VERSION),
        &[BucketArg::ObjectUri("s3_uri")],
    ),
    read(
        "bucket_object_fetch",
        &[GET_OBJECT],
        Conditional::VersionIdNeeds(GET_OBJECT_VERSION),
        &[BucketArg::ObjectUri("s3_uri")],
    ),
    read(
        "bucket_object_link",
        &[GET_OBJECT],
        Conditional::VersionIdNeeds(GET_OBJECT_VERSION),
        &[BucketArg::ObjectUri("s3_uri")],
    ),
    ToolSpec {
        name: "bucket_objects_put",
        permissions: &[PUT_OBJECT],
        conditional: Conditional::None,
        buckets: &[BucketArg::Name("bucket")],
        writes: true,
        needs_aws: true,
    },
    read(
        "package_list",
        &[LIST_BUCKET, GET_OBJECT],
        Conditional::None,
        &[BucketArg::Name("registry")],
    ),
    read(
        "package_browse",
        &[GET_OBJECT],
        Conditional::HashPrefixNeeds(LIST_BUCKET),
        &[BucketArg::Name("registry")],
    ),
    read(
        "package_diff",
        &[GET_OBJECT, LIST_BUCKET],
        Conditional::None,
        &[BucketArg::Name("registry")],
    ),
    ToolSpec {
        name: "package_create",
        permissions: &[PUT_OBJECT, GET_OBJECT],
        conditional: Conditional::None,
        buckets: &[
            BucketArg::Name("registry"),
            BucketArg::EntryUris("entries", "s3_uri"),
            BucketArg::UriList("s3_uris"),
        ],
        writes: true,
        needs_aws: true,
    },
];

/// The spec of the tool called `name`.
pub fn spec(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}
