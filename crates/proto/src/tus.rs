//! The tus 1.0 resumable upload protocol as Ferry speaks it at `/uploads/<collection>` (core, with the creation,
//! termination and checksum extensions): the header names, the version, and the values both sides agree on. The
//! server's route and the `ferry put` client take them from here, so the two cannot drift apart.
//!
//! Header names are lowercase, as HTTP/2 sends them and as `HeaderName::from_static` requires.

/// The one version spoken, in `Tus-Resumable` (every request and answer) and `Tus-Version`.
pub const VERSION: &str = "1.0.0";
/// `Tus-Resumable`: the version a request or answer speaks.
pub const RESUMABLE: &str = "tus-resumable";
/// `Tus-Version`: the versions a server speaks (discovery, and a 412 answer).
pub const VERSIONS: &str = "tus-version";
/// `Tus-Extension`: the extensions a server speaks (discovery).
pub const EXTENSION: &str = "tus-extension";
/// The extensions Ferry speaks.
pub const EXTENSIONS: &str = "creation,termination,checksum";
/// `Tus-Checksum-Algorithm`: the algorithms `Upload-Checksum` may name (discovery).
pub const CHECKSUM_ALGORITHM: &str = "tus-checksum-algorithm";
/// `Upload-Offset`: bytes received so far (`HEAD`, `PATCH` answers), or where a `PATCH` body starts.
pub const UPLOAD_OFFSET: &str = "upload-offset";
/// `Upload-Length`: the whole file's size, given when the upload is created.
pub const UPLOAD_LENGTH: &str = "upload-length";
/// `Upload-Metadata`: `key base64,key base64,...`; Ferry reads [`METADATA_PATH`].
pub const UPLOAD_METADATA: &str = "upload-metadata";
/// `Upload-Checksum`: `<algorithm> <base64 digest>` of one `PATCH` body, checked before its bytes are kept.
pub const UPLOAD_CHECKSUM: &str = "upload-checksum";
/// The metadata key of the collection path the file becomes.
pub const METADATA_PATH: &str = "path";
/// The body type of a `PATCH`.
pub const OFFSET_STREAM: &str = "application/offset+octet-stream";
/// The checksum algorithm Ferry checks: BLAKE3 (32-byte digest), as its transfers use for speed.
pub const BLAKE3: &str = "blake3";
/// The status of a `PATCH` whose body does not match its `Upload-Checksum` (its bytes were not kept).
pub const CHECKSUM_MISMATCH: u16 = 460;

/// Where the uploads are: `<UPLOADS>/<collection id>` to create one, `<UPLOADS>/<collection id>/<id>` for one.
pub const UPLOADS: &str = "/uploads";

/// The URL path of a collection's uploads: `POST` here creates one.
pub fn uploads_path(collection: uuid::Uuid) -> String {
    format!("{UPLOADS}/{collection}")
}
