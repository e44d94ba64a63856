//! Which file is this: a source's identity. Its key in the offsets table is its device and
//! inode ([`source_key`]), so it keeps its committed offset under any name; the fingerprint of
//! its first bytes, stored with the offset, tells a reused inode or a rewritten file from the
//! file it had.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// Bytes of a file's start that identify it (a rotated or truncated file changes them).
pub const FINGERPRINT_BYTES: u64 = 256;

/// A file's identity on this machine: (device, inode).
pub type FileId = (u64, u64);

/// The identity of the file `meta` describes.
pub fn file_id(meta: &std::fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// A source's key in the offsets table: its device and inode. A file keeps its committed
/// offset under any name (a hard link, `d/../d/a.log`, a rename by rotation, a name that is not
/// UTF-8); the fingerprint stored with it tells a reused inode from the file it had.
pub fn source_key(id: FileId) -> String {
    format!("inode:{}:{}", id.0, id.1)
}

/// The key `source_key` gives the file at `path`.
pub fn source_key_of(path: &Path) -> io::Result<String> {
    std::fs::metadata(path).map(|m| source_key(file_id(&m)))
}

/// FNV-1a 64, enough to tell files apart by their first bytes. Fingerprints are stored, so the
/// algorithm must never change (a test pins it to FNV-1a's published values).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut hasher, bytes);
    std::hash::Hasher::finish(&hasher)
}

/// Fingerprint of a file's first `len` bytes: the length (u16 LE) then the FNV-1a hash (u64 LE).
pub(crate) fn fingerprint(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; len as usize];
    file.read_exact_at(&mut head, 0)?;
    let mut out = (len as u16).to_le_bytes().to_vec();
    out.extend_from_slice(&fnv1a(&head).to_le_bytes());
    Ok(out)
}

pub(crate) fn fingerprint_len(stored: &[u8]) -> Option<u64> {
    let raw: [u8; 2] = stored.get(..2)?.try_into().ok()?;
    Some(u64::from(u16::from_le_bytes(raw)))
}

/// Whether `file` still starts with the bytes `stored` fingerprinted.
pub(crate) fn same_start(file: &File, size: u64, stored: &[u8]) -> bool {
    fingerprint_len(stored)
        .filter(|&len| len <= size)
        .and_then(|len| fingerprint(file, len).ok())
        .is_some_and(|fp| fp == stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored fingerprints stay valid: the hash is FNV-1a 64, pinned to its published values.
    #[test]
    fn fingerprints_hash_with_fnv1a_64() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
