//! A connector seen from one of its folders: the same operations on the same paths, but every error names
//! paths as seen from that folder (a collection's root), so that no message shows what lies above it.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;

use crate::{
    ByteStream, Commit, Connector, Digest, Entry, FileReader, Listing, ListingStream, PartFile,
    Result, StorageError, Upload, WholeRead, WholeWrite,
};

/// Paths below `root` as seen from it; anything else (a folder above it, on the way there) is its `/`.
#[derive(Debug, Clone)]
struct View {
    root: String,
}

impl View {
    fn shown(&self, path: &str) -> String {
        if self.root == "/" {
            return path.to_string();
        }
        match path.strip_prefix(self.root.as_str()) {
            Some("") => "/".into(),
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => "/".into(),
        }
    }

    fn err(&self, e: StorageError) -> StorageError {
        e.map_paths(|p| self.shown(p))
    }

    fn r<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| self.err(e))
    }
}

pub struct Scoped {
    inner: Arc<dyn Connector>,
    view: View,
}

impl Scoped {
    /// `inner` as seen from `root` (a normalised path in `inner`'s namespace).
    pub fn new(inner: Arc<dyn Connector>, root: &str) -> Self {
        Self {
            inner,
            view: View { root: root.into() },
        }
    }

    /// A path of the storage as this view shows it.
    pub fn shown(&self, path: &str) -> String {
        self.view.shown(path)
    }
}

#[async_trait::async_trait]
impl Connector for Scoped {
    async fn resolve(&self, path: &str) -> Result<String> {
        self.view.r(self.inner.resolve(path).await)
    }
    async fn stat(&self, path: &str) -> Result<Entry> {
        self.view.r(self.inner.stat(path).await)
    }
    async fn list(&self, path: &str) -> Result<Listing> {
        self.view.r(self.inner.list(path).await)
    }
    async fn list_chunks(&self, path: &str) -> Result<ListingStream> {
        let view = self.view.clone();
        let s = self.view.r(self.inner.list_chunks(path).await)?;
        Ok(Box::pin(s.map(move |c| view.r(c))))
    }
    async fn read(&self, path: &str, offset: u64, len: Option<u64>) -> Result<ByteStream> {
        let view = self.view.clone();
        let s = self.view.r(self.inner.read(path, offset, len).await)?;
        Ok(Box::pin(s.map(move |c| view.r(c))))
    }
    async fn write(&self, path: &str, overwrite: bool) -> Result<Box<dyn Upload>> {
        let inner = self.view.r(self.inner.write(path, overwrite).await)?;
        Ok(Box::new(ScopedUpload {
            inner,
            view: self.view.clone(),
        }))
    }
    async fn mkdir(&self, path: &str) -> Result<()> {
        self.view.r(self.inner.mkdir(path).await)
    }
    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.view.r(self.inner.rename(from, to).await)
    }
    async fn delete(&self, path: &str, recursive: bool) -> Result<()> {
        self.view.r(self.inner.delete(path, recursive).await)
    }
    async fn set_mtime(&self, path: &str, mtime: i64) -> Result<()> {
        self.view.r(self.inner.set_mtime(path, mtime).await)
    }
    async fn home_of(&self, username: &str) -> Option<String> {
        self.inner.home_of(username).await
    }

    fn has_homes(&self) -> bool {
        self.inner.has_homes()
    }
    async fn read_small(&self, path: &str, max: u64) -> Result<(Entry, Option<Bytes>)> {
        self.view.r(self.inner.read_small(path, max).await)
    }
    async fn open_reader(&self, path: &str) -> Result<Box<dyn FileReader>> {
        let inner = self.view.r(self.inner.open_reader(path).await)?;
        Ok(Box::new(ScopedReader {
            inner,
            view: self.view.clone(),
        }))
    }
    async fn open_part(
        &self,
        path: &str,
        token: &str,
        initial: Option<Bytes>,
    ) -> Result<Box<dyn PartFile>> {
        let inner = self
            .view
            .r(self.inner.open_part(path, token, initial).await)?;
        Ok(Box::new(ScopedPart {
            inner,
            view: self.view.clone(),
        }))
    }
    async fn remove_part(&self, path: &str, token: &str) -> Result<()> {
        self.view.r(self.inner.remove_part(path, token).await)
    }
    async fn flush(&self) -> Result<()> {
        self.view.r(self.inner.flush().await)
    }
    async fn read_files(
        &self,
        dir: &str,
        names: Vec<String>,
        max: u64,
        digest: Option<Digest>,
    ) -> Vec<Result<WholeRead>> {
        let out = self.inner.read_files(dir, names, max, digest).await;
        out.into_iter().map(|r| self.view.r(r)).collect()
    }
    async fn write_files(&self, dir: &str, files: Vec<WholeWrite>) -> Vec<Result<u64>> {
        let out = self.inner.write_files(dir, files).await;
        out.into_iter().map(|r| self.view.r(r)).collect()
    }
}

struct ScopedUpload {
    inner: Box<dyn Upload>,
    view: View,
}

#[async_trait::async_trait]
impl Upload for ScopedUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let r = self.inner.write(chunk).await;
        self.view.r(r)
    }
    async fn commit(self: Box<Self>) -> Result<Entry> {
        let view = self.view;
        view.r(self.inner.commit().await)
    }
    async fn abort(self: Box<Self>) -> Result<()> {
        let view = self.view;
        view.r(self.inner.abort().await)
    }
}

struct ScopedReader {
    inner: Box<dyn FileReader>,
    view: View,
}

#[async_trait::async_trait]
impl FileReader for ScopedReader {
    fn entry(&self) -> &Entry {
        self.inner.entry()
    }
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        self.view.r(self.inner.read_at(offset, len).await)
    }
    async fn changed(&self) -> Result<bool> {
        self.view.r(self.inner.changed().await)
    }
}

struct ScopedPart {
    inner: Box<dyn PartFile>,
    view: View,
}

#[async_trait::async_trait]
impl PartFile for ScopedPart {
    fn initial_len(&self) -> u64 {
        self.inner.initial_len()
    }
    async fn set_len(&self, len: u64) -> Result<()> {
        self.view.r(self.inner.set_len(len).await)
    }
    async fn write_at(&self, offset: u64, data: Bytes) -> Result<()> {
        self.view.r(self.inner.write_at(offset, data).await)
    }
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        self.view.r(self.inner.read_at(offset, len).await)
    }
    async fn write_verified(&self, offset: u64, data: Bytes, expect: Bytes) -> Result<()> {
        self.view
            .r(self.inner.write_verified(offset, data, expect).await)
    }
    async fn commit(self: Box<Self>, how: Commit) -> Result<Entry> {
        let view = self.view;
        view.r(self.inner.commit(how).await)
    }
    async fn discard(self: Box<Self>) -> Result<()> {
        let view = self.view;
        view.r(self.inner.discard().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::At;

    #[test]
    fn paths_are_shown_from_the_root() {
        let v = View {
            root: "/cohorts/045/raw".into(),
        };
        assert_eq!(v.shown("/cohorts/045/raw/x/y"), "/x/y");
        assert_eq!(v.shown("/cohorts/045/raw"), "/");
        assert_eq!(v.shown("/cohorts/045/rawer"), "/");
        assert_eq!(v.shown("/cohorts"), "/", "a folder above the root");
        let e = v.err(StorageError::Io(At::new("/cohorts/045/raw/f", "I/O error")));
        assert_eq!(e.to_string(), "/f: I/O error");
        let e = v.err(StorageError::NotADirectory("/cohorts/045".into()));
        assert_eq!(e.to_string(), "/: not a folder");
        let e = v.err(StorageError::VerifyFailed("bytes at offset 7".into()));
        assert_eq!(
            e.to_string(),
            "bytes at offset 7: the copy read back differs from what was written"
        );
        let whole = View { root: "/".into() };
        assert_eq!(whole.shown("/a/b"), "/a/b");
    }
}
