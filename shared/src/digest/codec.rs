//! The stored form of a [`LatencyDigest`]: a version byte, count, sum, min and max, then the
//! centroids, all little-endian; and what decoding refuses.

use super::LatencyDigest;

/// First byte of an encoded digest.
pub(crate) const CODEC_VERSION: u8 = 1;
const HEADER_BYTES: usize = 1 + 4 * 8 + 4;
const CENTROID_BYTES: usize = 16;

/// A stored digest that could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestDecodeError {
    /// The blob is shorter or longer than its header says.
    #[error("digest blob has {actual} bytes, expected {expected}")]
    Length {
        /// Bytes the header implies.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// Written by a codec version this build does not know.
    #[error("digest blob has unknown version {0}")]
    Version(u8),
}

impl LatencyDigest {
    /// Encodes as: version byte, count, sum, min, max (f64 LE), centroid count (u32 LE),
    /// then (mean, weight) pairs (f64 LE).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.centroids.len() * CENTROID_BYTES);
        out.push(CODEC_VERSION);
        for v in [self.count, self.sum, self.min, self.max] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.centroids.len() as u32).to_le_bytes());
        for &(mean, weight) in &self.centroids {
            out.extend_from_slice(&mean.to_le_bytes());
            out.extend_from_slice(&weight.to_le_bytes());
        }
        out
    }

    /// Decodes what [`LatencyDigest::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, DigestDecodeError> {
        if bytes.len() < HEADER_BYTES {
            return Err(DigestDecodeError::Length {
                expected: HEADER_BYTES,
                actual: bytes.len(),
            });
        }
        if bytes[0] != CODEC_VERSION {
            return Err(DigestDecodeError::Version(bytes[0]));
        }
        let f64_at = |at: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[at..at + 8]);
            f64::from_le_bytes(raw)
        };
        let mut raw_len = [0u8; 4];
        raw_len.copy_from_slice(&bytes[33..37]);
        let n = u32::from_le_bytes(raw_len) as usize;
        let expected = HEADER_BYTES + n * CENTROID_BYTES;
        if bytes.len() != expected {
            return Err(DigestDecodeError::Length {
                expected,
                actual: bytes.len(),
            });
        }
        let centroids = (0..n)
            .map(|i| {
                let at = HEADER_BYTES + i * CENTROID_BYTES;
                (f64_at(at), f64_at(at + 8))
            })
            .collect();
        Ok(Self {
            centroids,
            count: f64_at(1),
            sum: f64_at(9),
            min: f64_at(17),
            max: f64_at(25),
        })
    }
}
