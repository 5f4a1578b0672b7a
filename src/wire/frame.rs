//! Length-prefixed frames: a 4-byte big-endian length, then that many payload bytes.
//!
//! The length is checked against the configured limit before a single byte of the payload is
//! buffered, so a hostile prefix (say 4 GiB) costs nothing. Reading is buffered: one `read`
//! may bring in many frames, which the caller takes one by one without further syscalls.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;

/// Bytes in a frame's length prefix.
pub(crate) const HEADER_LEN: usize = 4;

/// The default largest payload accepted or sent: 64 MiB.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 64 << 20;

/// A read buffer starts at this size: an idle connection costs little. It doubles whenever a
/// read fills it (a burst of pipelined requests, or a large frame arriving), so bursts are soon
/// read in one syscall.
const MIN_BUFFER: usize = 4 << 10;

/// Growth for bursts of small frames stops here (large frames grow it as far as they need).
const BURST_BUFFER: usize = 256 << 10;

/// After a large frame the buffer is given back once it is empty and larger than this.
const SHRINK_ABOVE: usize = 1 << 20;

/// Starts a frame at the end of `out`, returning where it starts; finish it with [`end`].
pub(crate) fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    start
}

/// Finishes the frame begun at `start` by writing its length. A payload over `max` is removed
/// from `out` and reported, so nothing oversize is ever sent.
pub(crate) fn end(out: &mut Vec<u8>, start: usize, max: u32) -> Result<(), Error> {
    let len = out.len() - start - HEADER_LEN;
    if len > max as usize {
        out.truncate(start);
        return Err(Error::FrameTooLarge {
            len: len as u64,
            max,
        });
    }
    // `max` is a u32, so `len` fits the prefix.
    out[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Bytes of read buffers beyond their first [`MIN_BUFFER`], shared by every connection of a
/// manager: a frame in progress may only grow its buffer while the budget lasts, so no number
/// of peers announcing (or slowly sending) large frames can exhaust the manager's memory.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Takes `bytes` from the budget if they are there.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes taken now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Buffers bytes from a stream and cuts them into frames.
///
/// The buffer grows with the bytes that actually arrive (doubling while a read fills it), never
/// to the length a prefix merely announces: a 4-byte prefix claiming 64 MiB costs nothing until
/// the bytes come.
///
/// Invariants: `buf[start..end]` holds the bytes received but not yet returned as frames;
/// `buf.len()` is the buffer's usable capacity; with a budget, `buf.len() - MIN_BUFFER` bytes
/// (when positive) are taken from it, and given back when the buffer shrinks or is dropped.
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: u32,
    budget: Option<Arc<Budget>>,
}

impl FrameReader {
    pub(crate) fn new(max: u32) -> Self {
        FrameReader {
            buf: vec![0; MIN_BUFFER],
            start: 0,
            end: 0,
            max,
            budget: None,
        }
    }

    /// A reader whose growth past [`MIN_BUFFER`] is charged to `budget`.
    pub(crate) fn with_budget(max: u32, budget: Arc<Budget>) -> Self {
        let mut reader = FrameReader::new(max);
        reader.budget = Some(budget);
        reader
    }

    /// The next complete frame's payload if the buffer holds one. `Ok(None)` means more bytes
    /// are needed: call [`FrameReader::fill`].
    pub(crate) fn next_frame(&mut self) -> Result<Option<&[u8]>, Error> {
        let Some(len) = self.pending_len()? else {
            return Ok(None);
        };
        let available = self.end - self.start;
        if available < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = self.start + HEADER_LEN..self.start + HEADER_LEN + len;
        self.start = payload.end;
        if self.start == self.end {
            // Everything consumed: the next fill starts at the front again. The frame's
            // bytes stay in place until then.
            self.start = 0;
            self.end = 0;
        }
        Ok(Some(&self.buf[payload]))
    }

    /// The payload length announced by the buffered prefix, if a whole prefix is buffered.
    fn pending_len(&self) -> Result<Option<usize>, Error> {
        if self.end - self.start < HEADER_LEN {
            return Ok(None);
        }
        let prefix: [u8; HEADER_LEN] = self.buf[self.start..self.start + HEADER_LEN]
            .try_into()
            .expect("slice of HEADER_LEN bytes");
        let len = u32::from_be_bytes(prefix);
        if len > self.max {
            return Err(Error::FrameTooLarge {
                len: len as u64,
                max: self.max,
            });
        }
        Ok(Some(len as usize))
    }

    /// True when the buffer holds bytes of a frame that has not fully arrived.
    pub(crate) fn has_partial_frame(&self) -> bool {
        self.end > self.start
    }

    /// Reads once from `stream` into the buffer, making room for the frame in progress.
    /// Returns the number of bytes read; 0 means the peer closed the stream. A frame that
    /// cannot grow because the budget is spent is an `OutOfMemory` error.
    pub(crate) fn fill<R: Read>(&mut self, stream: &mut R) -> io::Result<usize> {
        self.make_room()?;
        let n = stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        if self.end == self.buf.len() && self.buf.len() < BURST_BUFFER {
            // The read filled the buffer: more is probably waiting (a burst of pipelined
            // calls). Read bigger next time, budget permitting.
            let grown = self.buf.len() * 2;
            if self.charge(grown) {
                self.buf.resize(grown, 0);
            }
        }
        Ok(n)
    }

    /// Takes bytes that arrived some other way (a fuzzer, a test, another transport), as much
    /// as the buffer makes room for at once; returns how many. Feed the rest after taking the
    /// frames out with [`FrameReader::next_frame`].
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> io::Result<usize> {
        self.fill(&mut bytes)
    }

    fn make_room(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > SHRINK_ABOVE {
                self.resize(MIN_BUFFER);
            }
        }
        if self.end < self.buf.len() {
            return Ok(()); // room for at least one more byte
        }
        // Full. Move what is buffered to the front first: that may be room enough.
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            return Ok(());
        }
        // A whole buffer of one frame in progress (a complete one would have been taken by
        // `next_frame`): double it, to at least a burst's size, never past the frame.
        let needed = match self.pending_len() {
            Ok(Some(len)) => HEADER_LEN + len,
            Ok(None) => HEADER_LEN,
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        };
        if needed <= self.buf.len() {
            return Ok(());
        }
        let new_len = (self.buf.len() * 2).max(BURST_BUFFER).min(needed);
        if !self.charge(new_len) {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "the manager's budget for frames in progress is spent (a frame of {needed} bytes cannot be buffered now)"
                ),
            ));
        }
        self.buf.resize(new_len, 0);
        Ok(())
    }

    /// Takes from the budget what growing to `new_len` needs; false if it is not there.
    fn charge(&self, new_len: usize) -> bool {
        match &self.budget {
            None => true,
            Some(budget) => budget.take(charged(new_len) - charged(self.buf.len())),
        }
    }

    fn resize(&mut self, new_len: usize) {
        if let Some(budget) = &self.budget {
            budget.give_back(charged(self.buf.len()) - charged(new_len));
        }
        self.buf = vec![0; new_len];
    }

    /// The buffer's capacity, for tests and statistics.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }
}

/// The part of a buffer of `len` bytes that counts against a budget.
fn charged(len: usize) -> usize {
    len.saturating_sub(MIN_BUFFER)
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(charged(self.buf.len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            let at = begin(&mut out);
            out.extend_from_slice(p);
            end(&mut out, at, DEFAULT_MAX_FRAME_LEN).unwrap();
        }
        out
    }

    /// Feeds `data` through a reader in chunks of `chunk` bytes.
    struct Chunked<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_all(data: &[u8], chunk: usize, max: u32) -> Result<Vec<Vec<u8>>, Error> {
        let mut reader = FrameReader::new(max);
        let mut src = Chunked { data, chunk };
        let mut frames = Vec::new();
        loop {
            while let Some(f) = reader.next_frame()? {
                frames.push(f.to_vec());
            }
            if reader.fill(&mut src).map_err(Error::Io)? == 0 {
                assert!(!reader.has_partial_frame(), "truncated");
                return Ok(frames);
            }
        }
    }

    #[test]
    fn golden_prefix_is_big_endian_length() {
        assert_eq!(framed(&[b"abc"]), [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(framed(&[b""]), [0, 0, 0, 0]);
    }

    #[test]
    fn frames_survive_any_chunking() {
        let big = vec![7u8; 200_000];
        let payloads: Vec<&[u8]> = vec![b"a", b"", &big, b"hello", &big[..70_000]];
        let data = framed(&payloads);
        for chunk in [1, 3, 4, 5, 4096, 65_536, usize::MAX] {
            let frames = read_all(&data, chunk, DEFAULT_MAX_FRAME_LEN).unwrap();
            assert_eq!(frames.len(), payloads.len(), "chunk {chunk}");
            for (got, want) in frames.iter().zip(&payloads) {
                assert_eq!(got.as_slice(), *want, "chunk {chunk}");
            }
        }
    }

    #[test]
    fn oversize_prefix_is_refused_before_buffering() {
        let data = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = read_all(&data, 64, 1024).unwrap_err();
        assert!(
            matches!(
                err,
                Error::FrameTooLarge {
                    len: 0xffff_ffff,
                    max: 1024
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn oversize_outgoing_frame_is_removed() {
        let mut out = b"kept".to_vec();
        let at = begin(&mut out);
        out.extend_from_slice(&[0; 11]);
        let err = end(&mut out, at, 10).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { len: 11, max: 10 }));
        assert_eq!(out, b"kept");
    }

    /// Bytes fed in directly are cut into the same frames as bytes read.
    #[test]
    fn fed_bytes_make_the_same_frames() {
        let data = framed(&[b"one", b"", &[9u8; 10_000], b"four"]);
        let mut reader = FrameReader::new(DEFAULT_MAX_FRAME_LEN);
        let mut frames = Vec::new();
        let mut at = 0;
        while at < data.len() {
            at += reader.feed(&data[at..]).unwrap();
            while let Some(frame) = reader.next_frame().unwrap() {
                frames.push(frame.to_vec());
            }
        }
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[2].len(), 10_000);
    }

    /// A prefix announcing 64 MiB costs nothing until the bytes arrive.
    #[test]
    fn buffers_grow_with_what_arrives_not_what_is_announced() {
        let mut data = (60u32 << 20).to_be_bytes().to_vec();
        data.extend_from_slice(&[1; 100]);
        let mut reader = FrameReader::new(DEFAULT_MAX_FRAME_LEN);
        let mut src = Chunked {
            data: &data,
            chunk: 1 << 20,
        };
        for _ in 0..4 {
            let _ = reader.fill(&mut src).unwrap();
        }
        assert!(reader.capacity() <= MIN_BUFFER, "{}", reader.capacity());
        // As bytes arrive, it grows about as fast as they do.
        let big = framed(&[&vec![3u8; 3 << 20]]);
        let mut reader = FrameReader::new(DEFAULT_MAX_FRAME_LEN);
        let mut src = Chunked {
            data: &big[..1 << 20],
            chunk: 64 << 10,
        };
        while reader.fill(&mut src).unwrap() > 0 {}
        assert!(reader.capacity() <= 2 << 20, "{}", reader.capacity());
    }

    /// Growth past the first buffer is charged to a shared budget and given back.
    #[test]
    fn the_budget_bounds_frames_in_progress() {
        let budget = Budget::new(1 << 20);
        let big = framed(&[&vec![3u8; 3 << 20]]);
        let mut a = FrameReader::with_budget(DEFAULT_MAX_FRAME_LEN, Arc::clone(&budget));
        let mut src = Chunked {
            data: &big,
            chunk: 64 << 10,
        };
        let err = loop {
            match a.fill(&mut src) {
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        assert!(budget.used() <= 1 << 20);
        drop(a);
        assert_eq!(budget.used(), 0);
        // Small frames never touch it.
        let mut b = FrameReader::with_budget(DEFAULT_MAX_FRAME_LEN, Arc::clone(&budget));
        let small = framed(&[b"hello", b"world"]);
        b.fill(&mut Chunked {
            data: &small,
            chunk: 100,
        })
        .unwrap();
        assert_eq!(b.next_frame().unwrap(), Some(&b"hello"[..]));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn partial_frame_is_reported() {
        let data = framed(&[b"hello"]);
        let mut reader = FrameReader::new(100);
        let mut src = Chunked {
            data: &data[..6],
            chunk: 100,
        };
        reader.fill(&mut src).unwrap();
        assert!(reader.next_frame().unwrap().is_none());
        assert!(reader.has_partial_frame());
    }
}
