//! A line file written on a thread of its own, straight to the disk where the file system
//! allows it (`O_DIRECT`): the readings file, hundreds of megabytes a minute at a million
//! sensors.
//!
//! Written through the page cache, each byte of it was copied by the kernel into a fresh page,
//! then written back and dropped (the write-behind of [`LineWriter`]): nearly half of what the
//! file cost the process (docs/performance.md). Written directly, the disk reads the lines
//! from this process's memory, and the writes wait for the disk on a thread that does nothing
//! else, never on a thread that reads sensors.
//!
//! The rules of [`LineWriter`] hold as they are: the writer thread runs one, fed with chunks
//! of whole lines, so a failed write loses its chunk's lines and leaves the file at its last
//! whole line.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::durable::{LineWriter, Storage};

/// The alignment of a direct write's offset, length and memory: a multiple of the logical block
/// size of the disks in use (512 or 4,096 bytes).
const ALIGN: usize = 4096;

/// The lines are handed to the writer thread in chunks of this much.
const CHUNK: usize = 1 << 20;

/// Chunks waiting for the writer thread at most; past them the caller waits for the disk (as
/// the page cache makes a writer wait when too much of it is dirty).
const QUEUE: usize = 2;

/// A run of bytes whose start is aligned to [`ALIGN`] in memory, without unsafe code: a vector
/// with room to spare, used from its first aligned byte on.
#[derive(Debug)]
struct Aligned {
    memory: Vec<u8>,
    /// Where the aligned run starts in `memory`.
    start: usize,
    len: usize,
}

impl Aligned {
    fn with_capacity(capacity: usize) -> Aligned {
        let memory = vec![0; capacity + ALIGN];
        let start = memory.as_ptr().align_offset(ALIGN);
        Aligned { memory, start, len: 0 }
    }

    fn capacity(&self) -> usize {
        self.memory.len() - ALIGN
    }

    fn bytes(&self) -> &[u8] {
        &self.memory[self.start..self.start + self.len]
    }

    fn extend(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.capacity() {
            let mut larger = Aligned::with_capacity((self.len + bytes.len()).next_power_of_two());
            larger.extend(self.bytes());
            *self = larger;
        }
        let at = self.start + self.len;
        self.memory[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Keeps the bytes from `from` on, moved to the start.
    fn keep_from(&mut self, from: usize) {
        let (start, end) = (self.start + from, self.start + self.len);
        self.memory.copy_within(start..end, self.start);
        self.len -= from;
    }
}

/// A file appended to in blocks written directly (`O_DIRECT`), its last partial block through
/// the page cache so that the file always ends where the bytes written end. The partial block
/// is kept, and written again directly as the first block of the next write (the kernel first
/// writes back and drops its cached page).
///
/// A chunk laid out for it ([`DirectFile::write_chunk`]: aligned in memory, starting with the
/// file's last partial block) is written from where it is; other bytes are copied behind the
/// partial block first. Where the file system has no direct writes (tmpfs, for one), or
/// refuses one, everything is written through the page cache, as a plain [`File`] does.
#[derive(Debug)]
pub(crate) struct DirectFile {
    file: File,
    /// Whether blocks are written directly.
    direct: bool,
    /// Writing directly: the file's bytes from `base` on (its last partial block), then those
    /// being written. Otherwise empty.
    stage: Aligned,
    /// Writing directly: the offset of `stage`'s first byte, a multiple of [`ALIGN`].
    /// Otherwise the file's length.
    base: u64,
    /// Chunks that were not laid out for the file, and were copied behind its last partial
    /// block.
    copied: u64,
}

impl DirectFile {
    /// Writes on at the end of `file` (empty, or ending at a line's end), directly if the file
    /// system allows.
    pub(crate) fn new(file: File) -> io::Result<DirectFile> {
        let mut direct = DirectFile {
            direct: set_direct(&file, true).is_ok(),
            file,
            stage: Aligned::with_capacity(2 * ALIGN),
            base: 0,
            copied: 0,
        };
        let len = direct.file.metadata()?.len();
        direct.reload(len)?;
        Ok(direct)
    }

    /// Writes on at the end of `file` through the page cache only.
    #[cfg(test)]
    fn through_page_cache(file: File) -> io::Result<DirectFile> {
        let base = file.metadata()?.len();
        Ok(DirectFile {
            file,
            direct: false,
            stage: Aligned::with_capacity(0),
            base,
            copied: 0,
        })
    }

    /// Whether blocks are written directly.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Takes up writing at the end of a file of `len` bytes.
    fn reload(&mut self, len: u64) -> io::Result<()> {
        self.stage.truncate(0);
        if !self.direct {
            self.base = len;
            return Ok(());
        }
        self.base = len - len % ALIGN as u64;
        let mut tail = vec![0; (len - self.base) as usize];
        // Through the page cache: a read of at most one block, on a rare path.
        set_direct(&self.file, false)?;
        let read = read_at(&self.file, &mut tail, self.base);
        set_direct(&self.file, true)?;
        read?;
        self.stage.extend(&tail);
        Ok(())
    }

    /// Writes no more directly.
    fn stop_direct(&mut self, why: &io::Error) -> io::Result<()> {
        log::debug!("direct writes refused ({why}); writing through the page cache");
        set_direct(&self.file, false)?;
        self.direct = false;
        self.base += self.stage.len as u64;
        self.stage.truncate(0);
        Ok(())
    }

    /// Appends `chunk[prefix..]`, whole lines. A chunk laid out for the file (aligned in
    /// memory, starting at the file's offset `base` with the `prefix` bytes the file has there)
    /// is written from where it is; another is copied behind the file's last partial block.
    pub(crate) fn write_chunk(&mut self, chunk: &[u8], prefix: usize, base: u64) -> io::Result<()> {
        let laid_out =
            self.direct && base == self.base && prefix == self.stage.len && chunk.as_ptr().align_offset(ALIGN) == 0;
        if !laid_out {
            self.copied += 1;
            return self.write_all(&chunk[prefix..]);
        }
        match write_blocks(&self.file, chunk, base) {
            Ok(whole) => {
                self.stage.truncate(0);
                self.stage.extend(&chunk[whole..]);
                self.base = base + whole as u64;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.stop_direct(&e)?;
                self.write_all(&chunk[prefix..])
            }
            Err(e) => Err(e),
        }
    }
}

impl Write for DirectFile {
    /// Writes all of `bytes` or fails (then [`Storage::cut`] sets the file back).
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if !self.direct {
            write_at(&self.file, bytes, self.base)?;
            self.base += bytes.len() as u64;
            return Ok(bytes.len());
        }
        let kept = self.stage.len;
        self.stage.extend(bytes);
        match write_blocks(&self.file, self.stage.bytes(), self.base) {
            Ok(whole) => {
                self.stage.keep_from(whole);
                self.base += whole as u64;
                Ok(bytes.len())
            }
            Err(e) => {
                self.stage.truncate(kept);
                if e.raw_os_error() == Some(libc::EINVAL) {
                    // An alignment this file system does not take.
                    self.stop_direct(&e)?;
                    return self.write(bytes);
                }
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Storage for DirectFile {
    fn cut(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        // A failed write leaves `stage` as it was: the file's last partial block, which is
        // where [`LineWriter`] cuts back to.
        if len == self.base + self.stage.len as u64 {
            return Ok(());
        }
        self.reload(len)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    // A file written directly has no pages to hand to the disk or to drop.
    fn start_write_back(&mut self, start: u64, end: u64) {
        if !self.direct {
            self.file.start_write_back(start, end);
        }
    }

    fn release(&mut self, start: u64, end: u64) {
        if !self.direct {
            self.file.release(start, end);
        }
    }
}

/// Writes all of `bytes` at `offset` of `file`.
#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

/// Reads `bytes.len()` bytes at `offset` of `file`.
#[cfg(unix)]
fn read_at(file: &File, bytes: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, bytes, offset)
}

/// Writes all of `bytes` at `offset` of `file` (its position moved: no write here relies on it).
#[cfg(not(unix))]
fn write_at(mut file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// Reads `bytes.len()` bytes at `offset` of `file`.
#[cfg(not(unix))]
fn read_at(mut file: &File, bytes: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(bytes)
}

/// Writes `chunk` to `file` (in direct mode) at the aligned offset `base`: its whole blocks
/// directly, the rest through the page cache. Returns the length of the whole blocks.
fn write_blocks(file: &File, chunk: &[u8], base: u64) -> io::Result<usize> {
    let whole = chunk.len() / ALIGN * ALIGN;
    if whole > 0 {
        write_at(file, &chunk[..whole], base)?;
    }
    if whole < chunk.len() {
        set_direct(file, false)?;
        let written = write_at(file, &chunk[whole..], base + whole as u64);
        set_direct(file, true)?;
        written?;
    }
    Ok(whole)
}

/// Turns direct writes of `file` on or off (Linux's `O_DIRECT`; elsewhere there are none).
#[cfg(not(target_os = "linux"))]
fn set_direct(_file: &File, on: bool) -> io::Result<()> {
    match on {
        true => Err(io::ErrorKind::Unsupported.into()),
        false => Ok(()),
    }
}

/// Turns direct writes of `file` on or off.
#[cfg(target_os = "linux")]
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: plain system calls on a file descriptor `file` owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        if libc::fcntl(fd, libc::F_SETFL, flags) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// How far a writer thread is: the chunks handed to it and those it is done with.
#[derive(Debug, Default)]
struct Progress {
    handed: AtomicU64,
    done: Mutex<u64>,
    moved: Condvar,
}

impl Progress {
    /// Waits until the thread is done with every chunk handed to it so far, or `deadline`.
    fn wait_until(&self, deadline: Instant) -> bool {
        let handed = self.handed.load(Ordering::Acquire);
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        while *done < handed {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            done = self
                .moved
                .wait_timeout(done, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn finished_one(&self) {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.moved.notify_all();
    }
}

/// The writer threads of the process, for [`wait_for_written`].
static WRITERS: Mutex<Vec<Weak<Progress>>> = Mutex::new(Vec::new());

/// Waits (at most `timeout`) until every line handed to a line file's writer thread is written,
/// in every run of the process; returns whether they all are. For a process about to end
/// without its runs' own ending (`std::process::exit`): each round's lines are handed over when
/// the round is written, so the files then hold every round written so far.
pub fn wait_for_written(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let writers: Vec<Arc<Progress>> = WRITERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    writers.iter().all(|writer| writer.wait_until(deadline))
}

/// What the writer thread reports.
#[derive(Debug, Default)]
struct Status {
    /// Lines in the file.
    written: u64,
    /// Lines that could not be written.
    lost: u64,
    /// Write errors not taken yet, the first of each failing streak.
    errors: Vec<io::Error>,
}

enum Job {
    /// A chunk of whole lines ([`DirectFile::write_chunk`]): `bytes[start..]` is laid out to start
    /// at the file's offset `base`, with `prefix` bytes the file has there, then `lines` lines.
    Lines {
        bytes: Vec<u8>,
        start: usize,
        prefix: usize,
        base: u64,
        lines: u64,
    },
    /// Sync the file and answer.
    Sync(SyncSender<io::Result<()>>),
}

/// A line file written by a thread of its own: lines are gathered here and handed over in
/// chunks; the thread writes each chunk whole or counts its lines lost, as a [`LineWriter`]
/// does, and logs the start and the end of a failing streak.
///
/// Each chunk is laid out to be written from where it is, directly: it starts at a byte
/// aligned in memory, with the last partial block of the file as it will be once the chunks
/// before are written. The thread checks the layout against the file and copies a chunk that
/// does not match (after a failed write).
pub(crate) struct LinesBehind {
    jobs: Option<SyncSender<Job>>,
    /// Buffers the thread is done with.
    spare: Receiver<Vec<u8>>,
    /// The chunk being gathered, from `start` on.
    buffer: Vec<u8>,
    /// Where the chunk starts in `buffer`: at an aligned address, if the buffer was not made
    /// larger since.
    start: usize,
    /// Bytes at the chunk's start that the file already has: its last partial block.
    prefix: usize,
    /// The file's offset of the chunk's start, once the chunks before it are written: a
    /// multiple of [`ALIGN`].
    base: u64,
    /// Lines in `buffer`.
    pending: u64,
    status: Arc<Mutex<Status>>,
    progress: Arc<Progress>,
    /// The writer thread, which gives the file back when it ends.
    thread: Option<JoinHandle<DirectFile>>,
    /// Lines that could not be formatted.
    unformatted: u64,
}

/// A chunk's buffer: room for the alignment, the file's last partial block, a chunk and the
/// line that takes it past [`CHUNK`].
const BUFFER: usize = CHUNK + 4 * ALIGN;

impl LinesBehind {
    /// Starts the writer thread of `file`, the empty file at `path`.
    pub(crate) fn start(path: PathBuf, file: DirectFile) -> io::Result<LinesBehind> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE);
        let (spare_tx, spare) = mpsc::channel();
        let status = Arc::new(Mutex::new(Status::default()));
        let shared = status.clone();
        let progress = Arc::new(Progress::default());
        let mut writers = WRITERS.lock().unwrap_or_else(PoisonError::into_inner);
        writers.retain(|writer| writer.strong_count() > 0);
        writers.push(Arc::downgrade(&progress));
        drop(writers);
        let thread_progress = progress.clone();
        let name = format!("write {}", path.file_name().unwrap_or_default().to_string_lossy());
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut writer = LineWriter::new(file);
            for job in queue {
                match job {
                    Job::Lines {
                        bytes,
                        start,
                        prefix,
                        base,
                        lines,
                    } => {
                        let was_failing = writer.failing;
                        let len = (bytes.len() - start - prefix) as u64;
                        let result =
                            writer.write_lines_with(len, lines, |file| file.write_chunk(&bytes[start..], prefix, base));
                        writer.write_behind();
                        let _ = spare_tx.send(bytes);
                        let mut status = shared.lock().unwrap_or_else(PoisonError::into_inner);
                        (status.written, status.lost) = (writer.written, writer.lost);
                        thread_progress.finished_one();
                        writer.log_streak(&path, was_failing, &result);
                        match result {
                            Err(e) if !was_failing => status.errors.push(e),
                            _ => {}
                        }
                    }
                    Job::Sync(answer) => {
                        let _ = answer.send(writer.sync());
                    }
                }
            }
            writer.into_storage()
        })?;
        let mut behind = LinesBehind {
            jobs: Some(jobs),
            spare,
            buffer: Vec::new(),
            start: 0,
            prefix: 0,
            base: 0,
            pending: 0,
            status,
            progress,
            thread: Some(thread),
            unformatted: 0,
        };
        (behind.buffer, behind.start) = behind.next_buffer(&[]);
        Ok(behind)
    }

    /// A buffer for the next chunk, starting with `prefix`, and where the chunk starts in it.
    fn next_buffer(&self, prefix: &[u8]) -> (Vec<u8>, usize) {
        let mut buffer = self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(BUFFER));
        buffer.clear();
        let start = buffer.as_ptr().align_offset(ALIGN).min(ALIGN);
        buffer.resize(start, 0);
        buffer.extend_from_slice(prefix);
        (buffer, start)
    }

    /// Adds one line (`line` without its newline, written by `write`); hands a chunk over when
    /// the buffer is full. A line that cannot be formatted is lost alone (the error).
    pub(crate) fn line(&mut self, write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<()> {
        let start = self.buffer.len();
        if let Err(e) = write(&mut self.buffer) {
            self.buffer.truncate(start);
            self.unformatted += 1;
            return Err(e);
        }
        self.buffer.push(b'\n');
        self.pending += 1;
        if self.buffer.len() - self.start >= CHUNK {
            self.hand_over();
        }
        Ok(())
    }

    /// Hands the gathered lines to the writer thread.
    fn hand_over(&mut self) {
        if self.pending == 0 {
            return;
        }
        let end = self.base + (self.buffer.len() - self.start) as u64;
        let base = end - end % ALIGN as u64;
        let tail = self.start + (base - self.base) as usize;
        let (next, start) = self.next_buffer(&self.buffer[tail..]);
        let lines = std::mem::take(&mut self.pending);
        let job = Job::Lines {
            bytes: std::mem::replace(&mut self.buffer, next),
            start: std::mem::replace(&mut self.start, start),
            prefix: std::mem::replace(&mut self.prefix, (end - base) as usize),
            base: std::mem::replace(&mut self.base, base),
            lines,
        };
        if let Some(jobs) = &self.jobs {
            self.progress.handed.fetch_add(1, Ordering::Release);
            if jobs.send(job).is_err() {
                // The thread is gone (it panicked): the lines are lost.
                self.status().lost += lines;
                self.progress.finished_one();
            }
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the gathered lines over; returns the first error the thread met since the last
    /// call, if any.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.hand_over();
        self.take_error()
    }

    fn take_error(&mut self) -> io::Result<()> {
        let mut status = self.status();
        match status.errors.is_empty() {
            true => Ok(()),
            false => Err(status.errors.remove(0)),
        }
    }

    /// Waits until every line handed over is written, and makes the file durable.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.hand_over();
        let (answer, synced) = mpsc::sync_channel(1);
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(Job::Sync(answer)).is_ok());
        let result = match sent {
            true => synced
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("the writer thread stopped"))),
            false => Err(io::Error::other("the writer thread stopped")),
        };
        self.take_error().and(result)
    }

    /// Lines written to the file so far.
    #[cfg(test)]
    fn written(&self) -> u64 {
        self.status().written
    }

    /// Lines that could not be written (or formatted) so far.
    pub(crate) fn lost(&self) -> u64 {
        self.status().lost + self.unformatted
    }
}

impl LinesBehind {
    /// Hands the last lines over, waits for the thread to write them and to end, and gives the
    /// file back.
    fn stop(&mut self) -> Option<DirectFile> {
        self.hand_over();
        self.jobs = None;
        self.thread.take().and_then(|thread| thread.join().ok())
    }

    /// [`stop`](Self::stop), for a test to look at the file.
    #[cfg(test)]
    fn close(mut self) -> Option<DirectFile> {
        self.stop()
    }
}

impl Drop for LinesBehind {
    /// Hands the last lines over and waits for the thread to write them.
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::durable::create_file;

    /// A folder on the disk the project is built on (a temporary folder may be in memory,
    /// where there are no direct writes).
    fn on_disk() -> tempfile::TempDir {
        tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap()
    }

    /// Line `i`: from 1 to 300 bytes, newline included, so that lines and chunks end anywhere
    /// in a block.
    fn line_text(i: usize) -> String {
        let len = (i * 7919) % 300;
        format!("{i}:{}", "x".repeat(len))
    }

    /// Writes lines `from..to` (handed over every `flush_every` lines) and adds them to
    /// `expected`.
    fn write(w: &mut LinesBehind, lines: std::ops::Range<usize>, flush_every: usize, expected: &mut Vec<u8>) {
        for i in lines {
            let text = line_text(i);
            w.line(|b| {
                b.extend_from_slice(text.as_bytes());
                Ok(())
            })
            .unwrap();
            expected.extend_from_slice(text.as_bytes());
            expected.push(b'\n');
            if i % flush_every == 0 {
                w.flush().unwrap();
            }
        }
    }

    /// Many chunks, full ones and short ones handed over at every kind of offset: the file
    /// holds every line in order, and each chunk was written directly from where it was laid
    /// out, never copied.
    #[cfg(target_os = "linux")]
    #[test]
    fn chunks_are_written_directly_from_where_they_are_and_the_file_holds_every_line() {
        let dir = on_disk();
        let path = dir.path().join("readings.jsonl");
        let file = DirectFile::new(create_file(&path).unwrap()).unwrap();
        assert!(file.is_direct(), "no direct writes on the project's disk");
        let mut w = LinesBehind::start(path.clone(), file).unwrap();
        let mut expected = Vec::new();
        // About 4.6 MB: full chunks, with short ones handed over every 997 lines.
        write(&mut w, 0..30_000, 997, &mut expected);
        w.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected, "after the sync");
        assert_eq!((w.written(), w.lost()), (30_000, 0));
        // The last lines are written when the writer is closed.
        write(&mut w, 30_000..30_100, 7, &mut expected);
        let file = w.close().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        assert!(file.is_direct());
        assert_eq!(file.copied, 0, "every chunk laid out for the file");
    }

    /// Where there are no direct writes, the same bytes go through the page cache.
    #[test]
    fn without_direct_writes_the_file_holds_the_same_lines() {
        let dir = on_disk();
        let path = dir.path().join("readings.jsonl");
        let file = DirectFile::through_page_cache(create_file(&path).unwrap()).unwrap();
        assert!(!file.is_direct());
        let mut w = LinesBehind::start(path.clone(), file).unwrap();
        let mut expected = Vec::new();
        write(&mut w, 0..10_000, 333, &mut expected);
        w.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        assert_eq!((w.written(), w.lost()), (10_000, 0));
    }

    /// A direct write the file system refuses (`EINVAL`, here an offset off the block size)
    /// is written through the page cache instead, and so is everything after it.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_refused_direct_write_goes_through_the_page_cache_from_then_on() {
        let dir = on_disk();
        let path = dir.path().join("readings.jsonl");
        let mut file = DirectFile::new(create_file(&path).unwrap()).unwrap();
        assert!(file.is_direct());
        // As if the file's first 100 bytes were written: a direct write there is refused.
        file.base = 100;
        let first = vec![b'a'; 5000];
        file.write_all(&first).unwrap();
        assert!(!file.is_direct());
        file.write_all(b"bc\n").unwrap();
        file.sync().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 100 + 5000 + 3);
        assert_eq!(&bytes[100..5100], &first[..]);
        assert_eq!(&bytes[5100..], b"bc\n");
    }

    /// A process about to exit waits for what its writers were handed: the lines of every
    /// chunk are in the file without the writer being synced or closed.
    #[test]
    fn waiting_for_the_writers_leaves_every_line_handed_over_in_the_file() {
        let dir = on_disk();
        let path = dir.path().join("readings.jsonl");
        let file = DirectFile::new(create_file(&path).unwrap()).unwrap();
        let mut w = LinesBehind::start(path.clone(), file).unwrap();
        let mut expected = Vec::new();
        write(&mut w, 1..20_001, 20_000, &mut expected);
        assert!(wait_for_written(Duration::from_secs(60)));
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        drop(w);
    }

    /// A writer that is behind makes the wait end at its deadline, unfinished.
    #[test]
    fn a_writer_behind_is_waited_for_until_the_deadline() {
        let progress = Progress::default();
        assert!(progress.wait_until(Instant::now()), "nothing handed over");
        progress.handed.fetch_add(2, Ordering::Release);
        progress.finished_one();
        assert!(!progress.wait_until(Instant::now()));
        progress.finished_one();
        assert!(progress.wait_until(Instant::now()));
    }

    /// The variable that tells the test's own process to run the part that needs a file size
    /// limit.
    const CHILD: &str = "SENSOR_ACTORS_TEST_FILE_SIZE_LIMIT";

    fn limit_file_size(limit: libc::rlim_t) {
        let mut rlimit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls with valid pointers.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut rlimit), 0);
            rlimit.rlim_cur = limit.min(rlimit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit), 0);
        }
    }

    /// A direct write that fails part-way (a file size limit, as a full disk) loses the lines
    /// of its chunk and leaves the file at its last whole line; once there is room again the
    /// next lines are written after it (copied behind the file's last partial block, since
    /// the chunks were laid out for a file that had the lost lines). Run in a process of its
    /// own: the limit is the process's.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_direct_write_loses_its_chunk_and_the_next_lines_follow_the_last_whole_one() {
        const NAME: &str =
            "sinks::behind::tests::a_failed_direct_write_loses_its_chunk_and_the_next_lines_follow_the_last_whole_one";
        if std::env::var_os(CHILD).is_none() {
            let output = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(text.contains("1 passed"), "{text}");
            return;
        }
        // SAFETY: a plain system call; a write past the limit then fails with EFBIG instead
        // of ending the process.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
        let dir = on_disk();
        let path = dir.path().join("readings.jsonl");
        let file = DirectFile::new(create_file(&path).unwrap()).unwrap();
        assert!(file.is_direct(), "no direct writes on the project's disk");
        let mut w = LinesBehind::start(path.clone(), file).unwrap();
        let line = |w: &mut LinesBehind, i: u32| {
            w.line(|b| {
                write!(b, "{i:099}").unwrap();
                Ok(())
            })
            .unwrap()
        };
        // 100 lines of 100 bytes: two whole blocks and part of a third.
        (0..100).for_each(|i| line(&mut w, i));
        w.sync().unwrap();
        // Room for four blocks: the next chunk's whole blocks fit, its last partial block not.
        limit_file_size(4 * ALIGN as libc::rlim_t);
        (100..200).for_each(|i| line(&mut w, i));
        let e = w.sync().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
        assert_eq!((w.written(), w.lost()), (100, 100));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 100 * 100, "cut back to its last whole line");
        // Room again.
        limit_file_size(libc::RLIM_INFINITY);
        (200..250).for_each(|i| line(&mut w, i));
        w.sync().unwrap();
        assert_eq!((w.written(), w.lost()), (150, 100));
        let file = w.close().unwrap();
        assert!(
            file.copied > 0,
            "the chunk after the failure was laid out for the lost lines"
        );
        let expected: String = (0..100).chain(200..250).map(|i| format!("{i:099}\n")).collect();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    }
}
