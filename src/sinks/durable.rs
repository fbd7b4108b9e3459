//! The file handling under the `--out` files: an output folder locked against a second writer,
//! files opened without following symbolic links, line files that never keep a torn line, and
//! a summary replaced atomically.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file in an output folder, held (`flock`) for as long as a run writes there. The
/// kernel releases it when the process ends, however it ends.
pub(crate) const LOCK_FILE: &str = ".sensor-actors.lock";

/// An output folder this process writes alone.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// Open for the run: closing it releases the lock.
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir`, or says which process holds it.
    pub(crate) fn take(dir: &Path) -> io::Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = open_regular(&path, OpenOptions::new().read(true).write(true).create(true))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let by = if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (process {})", crate::parse::quoted(holder))
                };
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!("another run is writing this folder{by}; choose another --out or wait for it to end"),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // Who holds it, for the message above; the lock itself is what counts.
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(DirLock { _file: file })
    }
}

/// Opens `path` with `options` without following a symbolic link in its last component, and
/// refuses anything but a regular file (a FIFO is opened without blocking, then refused).
pub(crate) fn open_regular(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let not_regular = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a device, a FIFO or a folder has this name); remove it or choose another --out",
        )
    };
    let file = options.open(path).map_err(|e| match std::fs::symlink_metadata(path) {
        // O_NOFOLLOW on a symbolic link fails with ELOOP.
        Ok(m) if m.file_type().is_symlink() => io::Error::new(
            io::ErrorKind::InvalidInput,
            "a symbolic link (not followed: its target is never written); remove it or choose another --out",
        ),
        // A FIFO without a reader fails with ENXIO, a folder with EISDIR.
        Ok(m) if !m.is_file() => not_regular(),
        _ => e,
    })?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    Ok(file)
}

/// Creates (or truncates) the line file `path`.
pub(crate) fn create_file(path: &Path) -> io::Result<File> {
    open_regular(path, OpenOptions::new().write(true).create(true).truncate(true))
}

/// Removes `path` if it is there (a symbolic link itself, never its target).
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Replaces `path` by what `write` writes, atomically: a temporary file beside it is written
/// (through a buffer, as the contents are made, so that a large file is never whole in memory),
/// synced and renamed over it, then the folder is synced. On failure the temporary file is
/// removed and `path` is left as it was.
pub(crate) fn replace_atomically(path: &Path, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    let temporary = temporary_path(path);
    let written = remove_if_present(&temporary)
        .and_then(|()| open_regular(&temporary, OpenOptions::new().write(true).create_new(true)))
        .and_then(|file| {
            let mut buffered = io::BufWriter::with_capacity(1 << 16, file);
            write(&mut buffered)?;
            let file = buffered.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// `summary.json` → `summary.json.tmp`.
pub(crate) fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes the folder's entries (a rename) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// What a line file is written to: a file that can be cut back to a length. A trait so that the
/// rules of [`LineWriter`] are tested against writes that fail and recover on cue.
pub(crate) trait Storage: Write {
    /// Cuts the file to `len` bytes and writes on from there.
    fn cut(&mut self, len: u64) -> io::Result<()>;
    /// Makes what was written durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Starts writing bytes `start..end` to the disk, without waiting for them.
    fn start_write_back(&mut self, _start: u64, _end: u64) {}
    /// Waits until bytes `start..end` (whose write-back was started) are on the disk, then lets
    /// the page cache drop them.
    fn release(&mut self, _start: u64, _end: u64) {}
}

impl Storage for File {
    fn cut(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        self.seek(SeekFrom::Start(len)).map(drop)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    // Both are advice: a failure changes nothing that was written, so it is only logged.
    #[cfg(target_os = "linux")]
    fn start_write_back(&mut self, start: u64, end: u64) {
        use std::os::fd::AsRawFd;
        let (offset, len) = range(start, end);
        // SAFETY: a plain system call on a file descriptor this `File` owns.
        if unsafe { libc::sync_file_range(self.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) } != 0 {
            log::debug!("sync_file_range: {}", io::Error::last_os_error());
        }
    }

    #[cfg(target_os = "linux")]
    fn release(&mut self, start: u64, end: u64) {
        use std::os::fd::AsRawFd;
        let (offset, len) = range(start, end);
        let fd = self.as_raw_fd();
        let all = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: plain system calls on a file descriptor this `File` owns.
        unsafe {
            if libc::sync_file_range(fd, offset, len, all) != 0 {
                log::debug!("sync_file_range: {}", io::Error::last_os_error());
            } else if libc::posix_fadvise(fd, offset, len, libc::POSIX_FADV_DONTNEED) != 0 {
                log::debug!("posix_fadvise: {}", io::Error::last_os_error());
            }
        }
    }
}

/// `start..end` as the offset and length the system calls take.
#[cfg(target_os = "linux")]
fn range(start: u64, end: u64) -> (libc::off64_t, libc::off64_t) {
    let offset = libc::off64_t::try_from(start).unwrap_or(libc::off64_t::MAX);
    let len = libc::off64_t::try_from(end.saturating_sub(start)).unwrap_or(libc::off64_t::MAX);
    (offset, len)
}

/// Writes whole lines and nothing else: lines are gathered in a buffer and handed to the file
/// in chunks that end at a line's end. When a write fails (a full disk, a file size limit) the
/// file is cut back to the end of its last whole line, the lines of that chunk are counted as
/// lost, and the next chunk is tried again: a disk that frees up is written on, and the file
/// never holds a torn line (short of the process being killed during a write).
pub(crate) struct LineWriter<S: Storage> {
    storage: S,
    buffer: Vec<u8>,
    /// Lines in `buffer`.
    pending: u64,
    /// Bytes of whole lines in the file.
    len: u64,
    /// Lines in the file.
    pub(crate) written: u64,
    /// Lines that could not be written.
    pub(crate) lost: u64,
    /// The error of the failing streak, while the writes fail.
    pub(crate) failing: bool,
    /// Bytes whose write-back [`LineWriter::write_behind`] started.
    started: u64,
    /// Bytes it let the page cache drop.
    released: u64,
}

/// [`LineWriter::write_behind`] hands bytes to the disk once at least this much was written.
const WRITE_BEHIND: u64 = 16 << 20;

/// A chunk is handed to the file once the buffer holds this much.
const CHUNK: usize = 1 << 16;

impl<S: Storage> LineWriter<S> {
    pub(crate) fn new(storage: S) -> Self {
        LineWriter {
            storage,
            buffer: Vec::with_capacity(CHUNK),
            pending: 0,
            len: 0,
            written: 0,
            lost: 0,
            failing: false,
            started: 0,
            released: 0,
        }
    }

    /// Adds one line (`line` without its newline, written by `write`); writes a chunk when the
    /// buffer is full. An error is the failed write of a chunk (its lines are lost).
    pub(crate) fn line(&mut self, write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<()> {
        let start = self.buffer.len();
        if let Err(e) = write(&mut self.buffer) {
            // A line that cannot be formatted is not written, the others are.
            self.buffer.truncate(start);
            self.lost += 1;
            return Err(e);
        }
        self.buffer.push(b'\n');
        self.pending += 1;
        if self.buffer.len() >= CHUNK {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Writes the buffered lines to the file.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut buffer = std::mem::take(&mut self.buffer);
        let lines = std::mem::take(&mut self.pending);
        let result = self.write_lines_with(buffer.len() as u64, lines, |storage| {
            storage.write_all(&buffer).and_then(|()| storage.flush())
        });
        buffer.clear();
        self.buffer = buffer;
        result
    }

    /// Writes `len` bytes, `lines` whole lines, with `write`, after the buffered ones (which
    /// must have been flushed): all of them, or none and they are counted as lost.
    pub(crate) fn write_lines_with(
        &mut self,
        len: u64,
        lines: u64,
        write: impl FnOnce(&mut S) -> io::Result<()>,
    ) -> io::Result<()> {
        debug_assert!(self.buffer.is_empty() && self.pending == 0);
        if len == 0 {
            return Ok(());
        }
        match write(&mut self.storage) {
            Ok(()) => {
                self.len += len;
                self.written += lines;
                self.failing = false;
                Ok(())
            }
            Err(e) => {
                self.lost += lines;
                self.failing = true;
                // Whatever part of the chunk reached the file goes: no torn line stays.
                if let Err(cut) = self.storage.cut(self.len) {
                    log::error!("cannot cut a failed write back to its last whole line: {cut}");
                }
                Err(e)
            }
        }
    }

    /// Streams a large file to the disk as it grows, the way a log writer should: starts the
    /// write-back of what was written since the last call (once that is at least 16 MiB), and
    /// waits for the part started the time before, which has had a call's time to get there, and
    /// lets the page cache drop it. Without it, a run writing 150 MB a second (a million
    /// sensors) leaves gigabytes of dirty pages to the kernel, whose write-back and reclaim then
    /// take their time from the rounds (docs/performance.md). Call it after a flush, e.g. once a
    /// round; it changes no byte of the file, and a file that is read again is read from disk.
    pub(crate) fn write_behind(&mut self) {
        if self.len - self.started < WRITE_BEHIND {
            return;
        }
        self.storage.start_write_back(self.started, self.len);
        if self.started > self.released {
            self.storage.release(self.released, self.started);
            self.released = self.started;
        }
        self.started = self.len;
    }

    /// Logs the start and the end of a streak of failed writes of this file, `path`, given
    /// whether it was failing before the write that gave `result`.
    pub(crate) fn log_streak(&self, path: &Path, was_failing: bool, result: &io::Result<()>) {
        match result {
            Ok(()) if was_failing && !self.failing => log::warn!(
                "{}: written again; {} lines were lost before",
                path.display(),
                self.lost
            ),
            Err(e) if !was_failing => log::error!(
                "{}: {e}; the file ends at its last whole line, lines are counted as lost until a write succeeds",
                path.display()
            ),
            _ => {}
        }
    }

    /// The file, once its lines are flushed.
    pub(crate) fn into_storage(self) -> S {
        debug_assert!(self.buffer.is_empty());
        self.storage
    }

    /// Flushes and makes the file durable.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.storage.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in memory whose writes fail from byte `fail_at` on, part-way through a write,
    /// until `recover` is called.
    #[derive(Default)]
    struct Flaky {
        bytes: Vec<u8>,
        fail_at: Option<usize>,
        /// The write-back calls, in order.
        write_back: Vec<(&'static str, u64, u64)>,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            match self.fail_at {
                Some(limit) if self.bytes.len() >= limit => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
                Some(limit) => {
                    let n = buf.len().min(limit - self.bytes.len());
                    self.bytes.extend_from_slice(&buf[..n]);
                    Ok(n)
                }
                None => {
                    self.bytes.extend_from_slice(buf);
                    Ok(buf.len())
                }
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Storage for Flaky {
        fn cut(&mut self, len: u64) -> io::Result<()> {
            self.bytes.truncate(len as usize);
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn start_write_back(&mut self, start: u64, end: u64) {
            self.write_back.push(("start", start, end));
        }
        fn release(&mut self, start: u64, end: u64) {
            self.write_back.push(("release", start, end));
        }
    }

    /// Writes `bytes` bytes as one line (newline included) and flushes.
    fn line_of(w: &mut LineWriter<Flaky>, bytes: u64) {
        w.line(|b| {
            b.resize(b.len() + bytes as usize - 1, b'x');
            Ok(())
        })
        .unwrap();
        w.flush().unwrap();
    }

    #[test]
    fn write_behind_starts_each_part_once_it_is_large_enough_and_releases_the_part_before() {
        const MIB: u64 = 1 << 20;
        let mut w = LineWriter::new(Flaky::default());
        line_of(&mut w, 16 * MIB - 1);
        w.write_behind();
        assert!(w.storage.write_back.is_empty(), "one byte short of the part");
        line_of(&mut w, 1);
        w.write_behind();
        line_of(&mut w, 5 * MIB);
        w.write_behind();
        line_of(&mut w, 11 * MIB);
        w.write_behind();
        w.write_behind();
        line_of(&mut w, 20 * MIB);
        w.write_behind();
        assert_eq!(
            w.storage.write_back,
            [
                ("start", 0, 16 * MIB),
                ("start", 16 * MIB, 32 * MIB),
                ("release", 0, 16 * MIB),
                ("start", 32 * MIB, 52 * MIB),
                ("release", 16 * MIB, 32 * MIB),
            ]
        );
        assert_eq!(w.storage.bytes.len() as u64, 52 * MIB, "nothing written changed");
    }

    #[test]
    fn write_behind_of_a_real_file_keeps_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("readings.jsonl");
        let mut w = LineWriter::new(create_file(&path).unwrap());
        let line = "x".repeat(999);
        for _ in 0..3 {
            for _ in 0..17 * 1024 {
                w.line(|b| {
                    b.extend_from_slice(line.as_bytes());
                    Ok(())
                })
                .unwrap();
            }
            w.flush().unwrap();
            w.write_behind();
        }
        // Each flush is a part of 17,408,000 bytes, over the 16 MiB: each is started at once.
        let part = 17 * 1024 * 1000;
        assert_eq!((w.started, w.released), (3 * part, 2 * part));
        w.sync().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len() as u64, 3 * part);
        assert!(text.lines().all(|l| l == line));
    }

    fn line(w: &mut LineWriter<Flaky>, text: &str) -> io::Result<()> {
        w.line(|b| {
            b.extend_from_slice(text.as_bytes());
            Ok(())
        })
    }

    #[test]
    fn a_write_that_fails_part_way_leaves_only_whole_lines_and_the_next_chunk_is_written() {
        let mut w = LineWriter::new(Flaky::default());
        line(&mut w, "one").unwrap();
        w.flush().unwrap();
        // The disk fills two bytes into the next chunk.
        w.storage.fail_at = Some(4 + 2);
        line(&mut w, "two").unwrap();
        line(&mut w, "three").unwrap();
        assert!(w.flush().is_err());
        assert_eq!(w.storage.bytes, b"one\n", "the torn part is cut off");
        assert_eq!((w.written, w.lost, w.failing), (1, 2, true));
        // Still full: nothing changes.
        line(&mut w, "four").unwrap();
        assert!(w.flush().is_err());
        assert_eq!(w.storage.bytes, b"one\n");
        // Space again: writing goes on after the last whole line.
        w.storage.fail_at = None;
        line(&mut w, "five").unwrap();
        w.sync().unwrap();
        assert_eq!(w.storage.bytes, b"one\nfive\n");
        assert_eq!((w.written, w.lost, w.failing), (2, 3, false));
    }

    #[test]
    fn a_write_that_fails_exactly_at_a_line_end_loses_only_the_lines_after_it() {
        let mut w = LineWriter::new(Flaky::default());
        w.storage.fail_at = Some(4);
        line(&mut w, "one").unwrap();
        w.flush().unwrap();
        line(&mut w, "two").unwrap();
        assert!(w.flush().is_err());
        assert_eq!(w.storage.bytes, b"one\n");
        assert_eq!((w.written, w.lost), (1, 1));
    }

    #[test]
    fn a_full_buffer_is_written_in_chunks_of_whole_lines() {
        let mut w = LineWriter::new(Flaky::default());
        let text = "x".repeat(1000);
        for _ in 0..100 {
            line(&mut w, &text).unwrap();
        }
        assert!(!w.storage.bytes.is_empty(), "written before the flush");
        assert!(w.storage.bytes.ends_with(b"\n"));
        w.flush().unwrap();
        assert_eq!(w.storage.bytes.len(), 100 * 1001);
        assert_eq!(w.written, 100);
    }

    #[test]
    fn a_line_that_cannot_be_formatted_is_lost_alone() {
        let mut w = LineWriter::new(Flaky::default());
        line(&mut w, "one").unwrap();
        let failed = w.line(|b| {
            b.extend_from_slice(b"half");
            Err(io::Error::other("cannot format"))
        });
        assert!(failed.is_err());
        line(&mut w, "two").unwrap();
        w.flush().unwrap();
        assert_eq!(w.storage.bytes, b"one\ntwo\n");
        assert_eq!((w.written, w.lost), (2, 1));
    }

    #[test]
    fn a_second_lock_of_a_folder_is_refused_until_the_first_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::take(dir.path()).unwrap();
        let e = DirLock::take(dir.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ResourceBusy);
        assert!(
            e.to_string().contains(&format!("process \"{}\"", std::process::id())),
            "{e}"
        );
        drop(first);
        DirLock::take(dir.path()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_and_fifos_are_refused_and_their_targets_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("events.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = create_file(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let fifo = dir.path().join("readings.jsonl");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let e = create_file(&fifo).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn an_atomic_replace_leaves_the_old_file_when_it_fails_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        replace_atomically(&path, |f| f.write_all(b"first\n")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first\n");
        // A folder where the temporary file would go makes the write fail.
        std::fs::create_dir(temporary_path(&path)).unwrap();
        assert!(replace_atomically(&path, |f| f.write_all(b"second\n")).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"first\n");
    }
}
