//! Entry hashes: `sha2-256-chunked` (the default for new entries), computed in
//! constant memory as the bytes stream by, and `SHA256`.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The type name of the chunked hash.
pub const SHA2_256_CHUNKED: &str = "sha2-256-chunked";
/// The type name of the plain hash.
pub const SHA256: &str = "SHA256";
/// The CRC64NVME type, accepted when reading.
pub const CRC64NVME: &str = "CRC64NVME";

const BASE_CHUNK: u64 = 8 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;

/// The chunk size for an object of `size` bytes: 8 MiB, doubled while that makes more
/// than 10,000 chunks (the S3 multipart rule quilt3 uses).
pub fn chunk_size(size: u64) -> u64 {
    let mut chunk = BASE_CHUNK;
    while size.div_ceil(chunk) > MAX_PARTS {
        chunk *= 2;
    }
    chunk
}

/// Streaming `sha2-256-chunked`: SHA-256 of each chunk, then SHA-256 over those
/// digests, standard base64. Holds two hash states, whatever the size.
#[derive(Debug, Clone)]
pub struct ChunkedHasher {
    chunk_size: u64,
    chunk: Sha256,
    in_chunk: u64,
    digests: Sha256,
    total: u64,
}

impl ChunkedHasher {
    /// A hasher for an object of `size` bytes (the chunk size depends on it).
    pub fn new(size: u64) -> ChunkedHasher {
        ChunkedHasher {
            chunk_size: chunk_size(size),
            chunk: Sha256::new(),
            in_chunk: 0,
            digests: Sha256::new(),
            total: 0,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = usize::try_from(self.chunk_size - self.in_chunk).unwrap_or(usize::MAX);
            let take = room.min(data.len());
            self.chunk.update(&data[..take]);
            self.in_chunk += take as u64;
            self.total += take as u64;
            data = &data[take..];
            if self.in_chunk == self.chunk_size {
                self.close_chunk();
            }
        }
    }

    fn close_chunk(&mut self) {
        let digest = std::mem::take(&mut self.chunk).finalize();
        self.digests.update(digest);
        self.in_chunk = 0;
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.total
    }

    /// The hash value.
    pub fn finish(mut self) -> String {
        if self.in_chunk > 0 {
            self.close_chunk();
        }
        base64::engine::general_purpose::STANDARD.encode(self.digests.finalize())
    }
}

/// `sha2-256-chunked` of bytes in memory.
pub fn chunked(data: &[u8]) -> String {
    let mut hasher = ChunkedHasher::new(data.len() as u64);
    hasher.update(data);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_vectors() {
        assert_eq!(
            chunked(b"0123456789abcdef"),
            "Xb1PbjJeWof4zD7zuHc9PI7sLiz/Ykj4gphlaZEt3xA="
        );
        assert_eq!(chunked(b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn feeding_in_pieces_changes_nothing() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut hasher = ChunkedHasher::new(data.len() as u64);
        for piece in data.chunks(777) {
            hasher.update(piece);
        }
        assert_eq!(hasher.finish(), chunked(&data));
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(0), 8 << 20);
        assert_eq!(chunk_size((8 << 20) * 10_000), 8 << 20);
        assert_eq!(chunk_size((8 << 20) * 10_000 + 1), 16 << 20);
        assert_eq!(chunk_size(1_000_000_000_000), 128 << 20);
    }
}
