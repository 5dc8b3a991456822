//! A consistent copy of a node's data: every sled tree and the audit signing key, as one stream
//! that ends in a SHA-256 of everything before it. Written by the running node (which holds
//! sled's lock) and read back into an empty data dir. Copies bytes only; never decodes a signal.
//! Invariant: a backup holds the signals of one moment (writes wait while it is taken) and an
//! audit log of exactly the length it had then, so it passes `store check` and `audit verify`.
//!
//! Format: the line `pactgate-backup/1\n`, then frames — `T` len name (a tree), `K` len key len
//! value (a pair of the last tree), `F` len name len bytes (a file of the data dir) — each len a
//! u32 big-endian, then `E` and the 32-byte SHA-256 of every byte before `E`.

use crate::store::Store;
use std::io::{Read, Write};
use std::path::Path;

const MAGIC: &[u8] = b"pactgate-backup/1\n";
const TREE: u8 = b'T';
const PAIR: u8 = b'K';
const FILE: u8 = b'F';
const END: u8 = b'E';
/// The data dir's files a backup carries besides the store.
const FILES: [&str; 1] = [crate::audit::AUDIT_KEY_FILE];

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the store failed while being copied: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the store failed while being copied: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot write or read the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error("this is not a pactgate backup (or of another version)")]
    NotABackup,
    #[error("the backup is damaged or incomplete: {0}")]
    Damaged(&'static str),
    #[error("{0} is not empty: restore only into an empty or new data dir")]
    NotEmpty(String),
}

/// What a backup held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub trees: u64,
    pub pairs: u64,
    pub files: u64,
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: ring::digest::Context,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn frame(out: &mut impl Write, tag: u8, parts: &[&[u8]]) -> std::io::Result<()> {
    out.write_all(&[tag])?;
    for part in parts {
        let len = u32::try_from(part.len()).map_err(std::io::Error::other)?;
        out.write_all(&len.to_be_bytes())?;
        out.write_all(part)?;
    }
    Ok(())
}

/// Writes a backup of the store and the data dir's key files to `out`. Pushes and purges wait
/// until it is done; audit entries appended meanwhile are not in it.
pub fn write(store: &Store, data_dir: &Path, out: impl Write) -> Result<Summary, BackupError> {
    let mut out = Hashing {
        inner: out,
        hash: ring::digest::Context::new(&ring::digest::SHA256),
    };
    out.write_all(MAGIC)?;
    let mut summary = Summary::default();
    store.while_writes_wait(|db, audit_len| -> Result<(), BackupError> {
        for name in db.tree_names() {
            frame(&mut out, TREE, &[&name])?;
            summary.trees += 1;
            let tree = db.open_tree(&name)?;
            for kv in tree.iter() {
                let (k, v) = kv?;
                if !crate::audit::backed_up(&name, &k, audit_len) {
                    continue;
                }
                frame(&mut out, PAIR, &[&k, &v])?;
                summary.pairs += 1;
            }
        }
        Ok(())
    })??;
    for name in FILES {
        let bytes = match std::fs::read(data_dir.join(name)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        frame(&mut out, FILE, &[name.as_bytes(), &bytes])?;
        summary.files += 1;
    }
    let digest = out.hash.clone().finish();
    out.inner.write_all(&[END])?;
    out.inner.write_all(digest.as_ref())?;
    out.inner.flush()?;
    Ok(summary)
}

/// A reader of frames that hashes what it reads.
struct Frames<R> {
    inner: R,
    hash: ring::digest::Context,
}

enum Frame {
    Tree(Vec<u8>),
    Pair(Vec<u8>, Vec<u8>),
    File(Vec<u8>, Vec<u8>),
    End,
}

impl<R: Read> Frames<R> {
    fn new(mut inner: R) -> Result<Self, BackupError> {
        let mut magic = vec![0u8; MAGIC.len()];
        inner
            .read_exact(&mut magic)
            .map_err(|_| BackupError::NotABackup)?;
        if magic != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        hash.update(MAGIC);
        Ok(Self { inner, hash })
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, BackupError> {
        let mut buf = vec![0u8; n];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| BackupError::Damaged("it ends early"))?;
        Ok(buf)
    }

    fn hashed(&mut self, n: usize) -> Result<Vec<u8>, BackupError> {
        let buf = self.bytes(n)?;
        self.hash.update(&buf);
        Ok(buf)
    }

    fn part(&mut self) -> Result<Vec<u8>, BackupError> {
        let len = self.hashed(4)?;
        let len = u32::from_be_bytes(len.try_into().expect("four bytes")) as usize;
        if len > 1 << 30 {
            return Err(BackupError::Damaged("a length is out of range"));
        }
        self.hashed(len)
    }

    fn next_frame(&mut self) -> Result<Frame, BackupError> {
        let tag = self.bytes(1)?[0];
        if tag == END {
            let expected = self.hash.clone().finish();
            let found = self.bytes(32)?;
            if found != expected.as_ref() {
                return Err(BackupError::Damaged("its checksum does not match"));
            }
            return Ok(Frame::End);
        }
        self.hash.update(&[tag]);
        match tag {
            TREE => Ok(Frame::Tree(self.part()?)),
            PAIR => Ok(Frame::Pair(self.part()?, self.part()?)),
            FILE => Ok(Frame::File(self.part()?, self.part()?)),
            _ => Err(BackupError::Damaged("an unknown frame")),
        }
    }
}

/// Checks a whole backup (every frame and the checksum) without writing anything.
pub fn check(input: impl Read) -> Result<Summary, BackupError> {
    read_frames(input, |_| Ok(()))
}

fn read_frames(
    input: impl Read,
    mut each: impl FnMut(Frame) -> Result<(), BackupError>,
) -> Result<Summary, BackupError> {
    let mut frames = Frames::new(input)?;
    let mut summary = Summary::default();
    loop {
        let frame = frames.next_frame()?;
        match &frame {
            Frame::Tree(_) => summary.trees += 1,
            Frame::Pair(..) => summary.pairs += 1,
            Frame::File(..) => summary.files += 1,
            Frame::End => return Ok(summary),
        }
        each(frame)?;
    }
}

/// Restores a backup into `data_dir`, which must be empty or not exist; checks the whole backup
/// first, then writes the store, the key files and a new integrity record.
pub fn restore(
    data_dir: &Path,
    mut open: impl FnMut() -> std::io::Result<Box<dyn Read>>,
) -> Result<Summary, BackupError> {
    if std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(BackupError::NotEmpty(data_dir.display().to_string()));
    }
    check(open()?)?;
    std::fs::create_dir_all(data_dir)?;
    let summary = {
        let db = sled::open(data_dir.join("store"))?;
        let mut tree: Option<sled::Tree> = None;
        let summary = read_frames(open()?, |frame| {
            match frame {
                Frame::Tree(name) => tree = Some(db.open_tree(name)?),
                Frame::Pair(k, v) => {
                    tree.as_ref()
                        .ok_or(BackupError::Damaged("a pair before any tree"))?
                        .insert(k, v)?;
                }
                Frame::File(name, bytes) => write_key_file(data_dir, &name, &bytes)?,
                Frame::End => {}
            }
            Ok(())
        })?;
        db.flush()?;
        summary
    };
    Store::adopt(data_dir)?;
    Ok(summary)
}

/// Writes one of [`FILES`] (mode 0600); any other name is refused.
fn write_key_file(data_dir: &Path, name: &[u8], bytes: &[u8]) -> Result<(), BackupError> {
    let name = FILES
        .into_iter()
        .find(|f| f.as_bytes() == name)
        .ok_or(BackupError::Damaged("a file the node does not keep"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(data_dir.join(name))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
