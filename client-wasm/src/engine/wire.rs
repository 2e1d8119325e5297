//! The byte-level pieces of the engine's formats (see the top of `engine.rs`): a reader
//! over a batch that refuses truncated input with a typed error, and the writer helpers
//! for the buffers handed back to JavaScript. Little-endian throughout.

use crate::error::{Error, Result};

/// Reads fields from a batch; every read checks the remaining length.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    pub fn is_done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                Error::BadArgument(format!(
                    "malformed batch: {n} bytes wanted at offset {} of {}",
                    self.at,
                    self.bytes.len()
                ))
            })?;
        let field = &self.bytes[self.at..end];
        self.at = end;
        Ok(field)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A u32 length and that many bytes.
    pub fn field(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// A count that announces `n` entries of at least `min_entry` bytes each: refused when
    /// the batch cannot hold them, so a corrupt count cannot make us reserve memory.
    pub fn count(&mut self, min_entry: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        let left = self.bytes.len() - self.at;
        if n.saturating_mul(min_entry) > left {
            return Err(Error::BadArgument(format!(
                "malformed batch: {n} entries announced with {left} bytes left"
            )));
        }
        Ok(n)
    }
}

pub fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A u32 length and the bytes.
pub fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// Overwrites the u32 at `at` (a count written before its entries were known).
pub fn patch_u32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_writers_wrote() {
        let mut out = Vec::new();
        put_u8(&mut out, 7);
        put_u32(&mut out, 0xdead_beef);
        put_u64(&mut out, u64::MAX - 1);
        put_field(&mut out, b"key");
        let mut r = Reader::new(&out);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u32().unwrap(), 0xdead_beef);
        assert_eq!(r.u64().unwrap(), u64::MAX - 1);
        assert_eq!(r.field().unwrap(), b"key");
        assert!(r.is_done());
    }

    #[test]
    fn truncated_input_is_a_bad_argument_not_a_panic() {
        let mut out = Vec::new();
        put_u32(&mut out, 10);
        out.extend_from_slice(b"short");
        let mut r = Reader::new(&out);
        assert_eq!(r.field().unwrap_err().code(), "BAD_ARGUMENT");
        let mut r = Reader::new(&[1, 2]);
        assert!(r.u32().is_err());
    }

    #[test]
    fn a_count_larger_than_the_batch_is_refused() {
        let mut out = Vec::new();
        put_u32(&mut out, 1_000_000);
        out.extend_from_slice(&[0; 16]);
        let mut r = Reader::new(&out);
        assert!(r.count(4).is_err());
    }
}
