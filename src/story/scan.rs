//! Streaming a JSON Lines file for the few lines that matter: the lines that contain one of a
//! few needles (a quoted sensor id, a quoted group name), found by a substring search over
//! large chunks before any JSON is parsed, with their line numbers. Memory is one chunk plus
//! the longest line. A last line without a newline (a run interrupted in the middle of a
//! write) is not a line: it is dropped, as `docs/outputs.md` asks of readers.

use std::io::{self, Read};

/// Bytes read at a time. Large enough that the per-read and per-chunk work (the UTF-8 check,
/// the newline count) runs at memory speed; small enough to stay in the cache.
pub(super) const CHUNK_BYTES: usize = 1 << 20;

/// Why a scan stopped.
#[derive(Debug)]
pub(super) enum ScanError<E> {
    /// Reading failed.
    Io(io::Error),
    /// The line (1-based) is not UTF-8.
    NotUtf8 { line: u64 },
    /// The caller refused a line.
    Line(E),
}

/// What a scan saw besides the matching lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ScanEnd {
    /// Whole lines in the file.
    pub(super) lines: u64,
    /// The last whole line, if any (to read the last round of a run without a summary).
    pub(super) last_line: Option<String>,
    /// Bytes after the last newline: an incomplete last line, ignored.
    pub(super) ignored_tail: usize,
}

/// Calls `on_line(line number, line)` for every whole line of `reader` that contains one of
/// `needles`, in file order, each line once. Reads `chunk` bytes at a time
/// ([`CHUNK_BYTES`] outside tests).
pub(super) fn scan<R: Read, E>(
    mut reader: R,
    needles: &[&str],
    chunk: usize,
    mut on_line: impl FnMut(u64, &str) -> Result<(), E>,
) -> Result<ScanEnd, ScanError<E>> {
    let mut buffer: Vec<u8> = Vec::with_capacity(chunk * 2);
    // Lines before `buffer` (whole lines already handled).
    let mut lines_before = 0u64;
    let mut last_line: Option<String> = None;
    loop {
        // Step 1: fill the buffer with one more chunk after the carried incomplete line.
        let carried = buffer.len();
        buffer.resize(carried + chunk, 0);
        let read = read_some(&mut reader, &mut buffer[carried..]).map_err(ScanError::Io)?;
        buffer.truncate(carried + read);
        if read == 0 {
            return Ok(ScanEnd {
                lines: lines_before,
                last_line,
                ignored_tail: buffer.len(),
            });
        }
        // Step 2: the whole lines in it, searched as text.
        let Some(end) = buffer.iter().rposition(|&b| b == b'\n').map(|i| i + 1) else {
            continue; // one line longer than the buffer so far: read on
        };
        let text = match std::str::from_utf8(&buffer[..end]) {
            Ok(text) => text,
            Err(e) => {
                let line = lines_before + count_newlines(&buffer[..e.valid_up_to()]) + 1;
                return Err(ScanError::NotUtf8 { line });
            }
        };
        let counted = matching_lines(text, needles, lines_before, &mut on_line).map_err(ScanError::Line)?;
        lines_before += counted;
        last_line = text[..end - 1].rsplit('\n').next().map(str::to_string);
        // Step 3: carry the incomplete line over.
        buffer.drain(..end);
    }
}

/// Reads until `buffer` is full or the end of the input, retrying interrupted reads.
fn read_some(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Calls `on_line` for the lines of `text` (whole lines, each ending with a newline) that
/// contain a needle; `first_line` is the number of the line before `text`. Returns how many
/// lines `text` holds.
fn matching_lines<E>(
    text: &str,
    needles: &[&str],
    first_line: u64,
    on_line: &mut impl FnMut(u64, &str) -> Result<(), E>,
) -> Result<u64, E> {
    // The next occurrence of each needle at or after `from`; searched again only once passed,
    // so a needle that is rare is not searched for again at every match of another.
    let find = |needle: &str, from: usize| text[from..].find(needle).map(|i| from + i);
    let mut next: Vec<Option<usize>> = needles.iter().map(|n| find(n, 0)).collect();
    let mut from = 0;
    let mut line = first_line;
    while let Some(hit) = next.iter().flatten().min().copied() {
        let start = text[..hit].rfind('\n').map_or(0, |i| i + 1);
        let end = hit + text[hit..].find('\n').unwrap_or(text.len() - hit);
        line += count_newlines(&text.as_bytes()[from..start]) + 1;
        on_line(line, &text[start..end])?;
        from = (end + 1).min(text.len());
        for (k, needle) in needles.iter().enumerate() {
            if next[k].is_some_and(|at| at < from) {
                next[k] = find(needle, from);
            }
        }
    }
    Ok(line + count_newlines(&text.as_bytes()[from..]) - first_line)
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every scan of `input`, with chunks of 1 to 40 bytes: (line number, line) of the matches.
    fn matches(input: &str, needles: &[&str]) -> Vec<(u64, String)> {
        let mut first: Option<(Vec<(u64, String)>, ScanEnd)> = None;
        for chunk in 1..=40 {
            let mut seen = Vec::new();
            let end = scan::<_, ()>(input.as_bytes(), needles, chunk, |n, l| {
                seen.push((n, l.to_string()));
                Ok(())
            })
            .unwrap();
            match &first {
                None => first = Some((seen, end)),
                Some((expected, expected_end)) => {
                    assert_eq!(&seen, expected, "chunk {chunk}");
                    assert_eq!(&end, expected_end, "chunk {chunk}");
                }
            }
        }
        first.unwrap().0
    }

    /// Matching lines come once each, in order, with their 1-based numbers, whatever the chunk
    /// size; a line holding two needles comes once.
    #[test]
    fn finds_the_lines_of_any_needle_with_their_numbers() {
        let input = "{\"s\":\"a\"}\n{\"s\":\"b\"}\n{\"s\":\"a\",\"g\":\"x\"}\n\n{\"g\":\"x\"}\n{\"s\":\"c\"}\n";
        assert_eq!(
            matches(input, &["\"a\"", "\"x\""]),
            [
                (1, "{\"s\":\"a\"}".to_string()),
                (3, "{\"s\":\"a\",\"g\":\"x\"}".to_string()),
                (5, "{\"g\":\"x\"}".to_string()),
            ]
        );
        assert_eq!(matches(input, &["\"c\""]), [(6, "{\"s\":\"c\"}".to_string())]);
        assert!(matches(input, &["\"d\""]).is_empty());
    }

    /// A last line without a newline is ignored (and counted as such); the last whole line
    /// is kept.
    #[test]
    fn an_incomplete_last_line_is_ignored() {
        let input = "a1\nb2\na3";
        assert_eq!(matches(input, &["a"]), [(1, "a1".to_string())]);
        let end = scan::<_, ()>(input.as_bytes(), &["a"], 2, |_, _| Ok(())).unwrap();
        assert_eq!(
            end,
            ScanEnd {
                lines: 2,
                last_line: Some("b2".to_string()),
                ignored_tail: 2
            }
        );
        let empty = scan::<_, ()>(&b""[..], &["a"], 8, |_, _| Ok(())).unwrap();
        assert_eq!(empty, ScanEnd::default());
    }

    /// Bytes that are not UTF-8 stop the scan, naming their line.
    #[test]
    fn bytes_that_are_not_utf8_name_their_line() {
        let input = b"ok\nok\nbad \xff here\nok\n";
        let result = scan::<_, ()>(&input[..], &["zz"], 64, |_, _| Ok(()));
        assert!(matches!(result, Err(ScanError::NotUtf8 { line: 3 })), "{result:?}");
    }

    /// The caller's refusal of a line stops the scan with its error.
    #[test]
    fn a_refused_line_stops_the_scan() {
        let result = scan(
            &b"a\nb\na\n"[..],
            &["a"],
            64,
            |n, _| if n == 3 { Err(n) } else { Ok(()) },
        );
        assert!(matches!(result, Err(ScanError::Line(3))), "{result:?}");
    }
}
