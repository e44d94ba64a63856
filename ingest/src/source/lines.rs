//! Where a source's complete lines end: only complete lines are read, so a writer's partial last
//! line is held until its newline arrives (the planner's files, the spool of standard input).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The position just after the last newline in `from..size`, or `from` when there is none:
/// a partial last line is held until it is complete.
pub(crate) fn complete_lines_end(file: &File, from: u64, size: u64) -> io::Result<u64> {
    let mut end = size;
    let mut buf = vec![0u8; 64 * 1024];
    while end > from {
        let start = end.saturating_sub(buf.len() as u64).max(from);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}
