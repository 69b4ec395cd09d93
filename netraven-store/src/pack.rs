//! Writes blobs whose ids are already known straight into a git pack file and its index
//! (pack format version 2, index format version 2, as git's `Documentation/gitformat-pack.txt`
//! describes them), for the one-shot [`GitTreeSink`](crate::git_tree::GitTreeSink).
//!
//! Why not libgit2's own path: writing a blob through libgit2 and packing it hashes the content
//! four times with the collision-detecting SHA-1 (the id, the object write, the pack builder's
//! read-back and the indexer) and compresses it after a delta search; libgit2 has no call that
//! takes an object whose id the caller computed. Here each blob is hashed once (by the caller,
//! [`blob_id`]), deflated once, and the pack and index are written next to the repository's other
//! packs (temporary names, fsynced, then renamed: the index last, since readers find packs by
//! their index). Blobs are stored whole (no deltas); `git gc` can repack them later.

use git2::Oid;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Object type number of a blob in a pack entry header.
const OBJ_BLOB: u8 = 3;

/// The git object id of a blob with this content: SHA-1 over `blob <len>\0` and the content.
pub fn blob_id(content: &[u8]) -> Oid {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    // A SHA-1 digest is always 20 bytes, which is what `from_bytes` accepts.
    Oid::from_bytes(&h.finalize()).unwrap_or_else(|_| Oid::zero())
}

/// One pack being built in memory: entries appended as they come, written out by
/// [`PackBuilder::finish`].
pub struct PackBuilder {
    /// The pack bytes so far: the 12-byte header (its count filled in at the end), then entries.
    buf: Vec<u8>,
    /// Per object: id, offset of its entry in `buf`, CRC-32 of the entry's bytes.
    entries: Vec<(Oid, u64, u32)>,
    index: HashMap<Oid, usize>,
    deflate: flate2::Compress,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    /// An empty pack, compressed at zlib's default level (git's default too).
    pub fn new() -> Self {
        Self::with_level(flate2::Compression::default().level())
    }

    /// An empty pack whose entries are compressed at zlib `level` (0–9).
    pub fn with_level(level: u32) -> Self {
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(b"PACK");
        buf.extend_from_slice(&2u32.to_be_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes());
        PackBuilder {
            buf,
            entries: Vec::new(),
            index: HashMap::new(),
            deflate: flate2::Compress::new(flate2::Compression::new(level.min(9)), true),
        }
    }

    /// Objects in the pack.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of the pack so far.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Whether the pack holds no object.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the pack already holds `oid`.
    pub fn contains(&self, oid: Oid) -> bool {
        self.index.contains_key(&oid)
    }

    /// Appends a blob whose id is `oid` (the caller computed it with [`blob_id`]); a blob
    /// already in the pack is not added twice.
    pub fn add_blob(&mut self, oid: Oid, content: &[u8]) -> io::Result<()> {
        if self.contains(oid) {
            return Ok(());
        }
        let offset = self.buf.len();
        // Entry header: type and size, the size's low 4 bits first, then 7 bits per byte.
        let mut size = content.len() as u64;
        let mut byte = (OBJ_BLOB << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            self.buf.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        self.buf.push(byte);
        self.deflate.reset();
        let mut input = content;
        loop {
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(content.len() / 2 + 4096);
            }
            let before_in = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, &mut self.buf, flate2::FlushCompress::Finish)
                .map_err(io::Error::other)?;
            let used = (self.deflate.total_in() - before_in) as usize;
            input = &input[used..];
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        let crc = crc32fast::hash(&self.buf[offset..]);
        self.index.insert(oid, self.entries.len());
        self.entries.push((oid, offset as u64, crc));
        Ok(())
    }

    /// The content of a blob added to this pack, inflated again (reads of blobs not written out
    /// yet).
    pub fn read(&self, oid: Oid) -> Option<Vec<u8>> {
        let &(_, offset, _) = self.entries.get(*self.index.get(&oid)?)?;
        let mut at = offset as usize;
        let mut byte = *self.buf.get(at)?;
        let mut size = (byte & 0x0f) as u64;
        let mut shift = 4;
        while byte & 0x80 != 0 {
            at += 1;
            byte = *self.buf.get(at)?;
            size |= ((byte & 0x7f) as u64) << shift;
            shift += 7;
        }
        let mut out = Vec::with_capacity(size as usize);
        let mut inflate = flate2::Decompress::new(true);
        inflate
            .decompress_vec(
                self.buf.get(at + 1..)?,
                &mut out,
                flate2::FlushDecompress::Finish,
            )
            .ok()?;
        (out.len() as u64 == size).then_some(out)
    }

    /// Writes `pack-<checksum>.pack` and its `.idx` into `pack_dir` (the repository's
    /// `objects/pack`) and returns the pack's path. Nothing is written for an empty pack.
    pub fn finish(mut self, pack_dir: &Path) -> io::Result<Option<PathBuf>> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        let count = u32::try_from(self.entries.len())
            .map_err(|_| io::Error::other("too many objects for one pack"))?;
        self.buf[8..12].copy_from_slice(&count.to_be_bytes());
        let checksum: [u8; 20] = Sha1::digest(&self.buf).into();
        self.buf.extend_from_slice(&checksum);
        let name = format!("pack-{}", hex::encode(checksum));

        // The index: fan-out table, sorted ids, CRC-32s, offsets (large ones in a second
        // table), the pack's checksum, and the index's own checksum.
        let mut sorted: Vec<&(Oid, u64, u32)> = self.entries.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut idx = Vec::with_capacity(8 + 256 * 4 + sorted.len() * 28 + 40);
        idx.extend_from_slice(&[0xff, b't', b'O', b'c']);
        idx.extend_from_slice(&2u32.to_be_bytes());
        let mut fanout = [0u32; 256];
        for e in &sorted {
            fanout[e.0.as_bytes()[0] as usize] += 1;
        }
        let mut running = 0u32;
        for n in fanout {
            running += n;
            idx.extend_from_slice(&running.to_be_bytes());
        }
        for e in &sorted {
            idx.extend_from_slice(e.0.as_bytes());
        }
        for e in &sorted {
            idx.extend_from_slice(&e.2.to_be_bytes());
        }
        let mut large = Vec::new();
        for e in &sorted {
            if e.1 < 0x8000_0000 {
                idx.extend_from_slice(&(e.1 as u32).to_be_bytes());
            } else {
                idx.extend_from_slice(&(0x8000_0000 | large.len() as u32).to_be_bytes());
                large.push(e.1);
            }
        }
        for off in large {
            idx.extend_from_slice(&off.to_be_bytes());
        }
        idx.extend_from_slice(&checksum);
        let idx_sum: [u8; 20] = Sha1::digest(&idx).into();
        idx.extend_from_slice(&idx_sum);

        let pack_path = pack_dir.join(format!("{name}.pack"));
        let idx_path = pack_dir.join(format!("{name}.idx"));
        write_durably(pack_dir, &pack_path, &self.buf)?;
        write_durably(pack_dir, &idx_path, &idx)?;
        // The renames themselves survive a crash once the directory is synced.
        File::open(pack_dir)?.sync_all()?;
        Ok(Some(pack_path))
    }
}

/// Writes `bytes` to a temporary file in `dir`, fsyncs it, makes it read-only (as git does with
/// packs) and renames it to `path`.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(
        "tmp_netraven_{}_{}",
        std::process::id(),
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pack")
    ));
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o444);
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::{ObjectType, Repository};

    fn config(i: usize, lines: usize) -> String {
        let mut s = format!("hostname r{i}\n");
        for n in 0..lines {
            s.push_str(&format!(
                "interface Gi1/0/{n}\n description r{i} port {n}\n!\n"
            ));
        }
        s
    }

    #[test]
    fn blob_ids_are_gits() {
        for content in ["", "a", "hostname r1\n", &config(1, 500)] {
            assert_eq!(
                blob_id(content.as_bytes()),
                Oid::hash_object(ObjectType::Blob, content.as_bytes()).expect("hash")
            );
        }
    }

    #[test]
    fn libgit2_reads_every_blob_of_a_written_pack() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init_bare(dir.path()).expect("init");
        let mut pack = PackBuilder::new();
        // Sizes around the header's 4- and 11-bit boundaries, an empty blob, a duplicate.
        let mut contents: Vec<String> = vec![
            String::new(),
            "x".repeat(15),
            "x".repeat(16),
            "y".repeat(2047),
            "y".repeat(2048),
        ];
        contents.extend((0..40).map(|i| config(i, 300 + i)));
        contents.push(contents[7].clone());
        for c in &contents {
            let oid = blob_id(c.as_bytes());
            pack.add_blob(oid, c.as_bytes()).expect("add");
            assert_eq!(pack.read(oid).as_deref(), Some(c.as_bytes()));
        }
        assert_eq!(pack.len(), contents.len() - 1);
        let written = pack
            .finish(&dir.path().join("objects/pack"))
            .expect("finish")
            .expect("a pack");
        assert!(written.exists());
        let odb = repo.odb().expect("odb");
        odb.refresh().expect("refresh");
        for c in &contents {
            let blob = repo.find_blob(blob_id(c.as_bytes())).expect("blob in pack");
            assert_eq!(blob.content(), c.as_bytes());
        }
    }

    #[test]
    fn git_fsck_accepts_the_pack_when_git_is_installed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init_bare(dir.path()).expect("init");
        let mut pack = PackBuilder::new();
        let mut files = Vec::new();
        for i in 0..20 {
            let c = config(i, 200);
            let oid = blob_id(c.as_bytes());
            pack.add_blob(oid, c.as_bytes()).expect("add");
            files.push((format!("r{i}.cfg"), oid));
        }
        pack.finish(&dir.path().join("objects/pack"))
            .expect("finish");
        repo.odb().expect("odb").refresh().expect("refresh");
        // The tree builder checks that each blob exists: it reads them from the new pack.
        let mut tree = repo.treebuilder(None).expect("tree");
        for (name, oid) in &files {
            tree.insert(name, *oid, 0o100644).expect("insert");
        }
        let tree = repo
            .find_tree(tree.write().expect("write tree"))
            .expect("tree");
        let sig = git2::Signature::now("t", "t@t").expect("sig");
        repo.commit(Some("HEAD"), &sig, &sig, "m", &tree, &[])
            .expect("commit");
        match std::process::Command::new("git")
            .arg("--git-dir")
            .arg(dir.path())
            .args(["fsck", "--full", "--strict"])
            .output()
        {
            Ok(out) => assert!(
                out.status.success(),
                "git fsck: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("skipped: git is not installed ({e})"),
        }
    }
}
