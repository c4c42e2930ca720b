//! The backup buckets (S3): listing a backup catalog, the facts a listing does not carry
//! (encryption, Object Lock), and streaming an object into one of the core's verifiers without
//! ever holding it whole in memory.

use std::future::Future;
use std::io::Read;

use aws_sdk_s3::Client;
use hapilot_core::backup::catalog::StoredObject;
use tokio::sync::mpsc;

use crate::AdapterError;

/// How many listings or HEADs run at once against one bucket.
const CONCURRENCY: usize = 16;

/// What HeadObject says about protection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectFacts {
    /// Server-side encryption (SSE-S3 or SSE-KMS) present.
    pub encrypted: bool,
    /// An Object Lock retention (governance or compliance) present.
    pub locked: bool,
    /// The stored `ChecksumSHA256` (base64), when the object was uploaded with one.
    pub sha256: Option<String>,
    /// A time from its user metadata (`x-amz-meta-*time*`), when it carries one.
    pub metadata_time: Option<i64>,
}

/// A bucket of backups.
pub trait BackupStore: Clone + Send + Sync + 'static {
    /// Every object under `prefix`, each with its size, LastModified (as `time`) and ETag; `encrypted`/`locked` are left false (see [`BackupStore::facts`]). Sub-prefixes
    /// one level down (WAL directories, base backup ids) are listed concurrently.
    fn list_tree(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<StoredObject>, AdapterError>> + Send;

    /// One level under `prefix` (delimiter `/`): whether objects sit directly in it, and its
    /// sub-folders (full prefixes, ending in `/`).
    fn folders(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<(bool, Vec<String>), AdapterError>> + Send;

    /// Encryption and Object Lock of each key (HeadObject, concurrently), in the keys' order.
    fn facts(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> impl Future<Output = Result<Vec<ObjectFacts>, AdapterError>> + Send;

    /// A small object's bytes (`backup.info`, `.history`, `backup_manifest`); `None` if absent.
    fn read_small(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, AdapterError>> + Send;

    /// A URL that GETs the object without credentials for `expires` (handed to a restore
    /// agent, which has no AWS access of its own).
    fn presigned_get(
        &self,
        bucket: &str,
        key: &str,
        expires: std::time::Duration,
    ) -> impl Future<Output = Result<String, AdapterError>> + Send;

    /// Streams the object into `check` (run on a blocking thread, fed chunk by chunk) and
    /// returns what it returns.
    fn verify<T: Send + 'static>(
        &self,
        bucket: &str,
        key: &str,
        check: impl FnOnce(ObjectReader) -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, AdapterError>> + Send;
}

/// [`BackupStore`] on S3.
#[derive(Debug, Clone)]
pub struct S3BackupStore {
    client: Client,
}

impl S3BackupStore {
    /// From AWS configuration, optionally in another region (the DR bucket's).
    pub fn from_sdk(config: &aws_config::SdkConfig, region: Option<&str>) -> Self {
        let mut builder = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some());
        if let Some(region) = region {
            builder = builder.region(aws_config::Region::new(region.to_string()));
        }
        Self::new(Client::from_conf(builder.build()))
    }

    /// From a client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// One listing, paged; with `delimiter`, also the common prefixes.
    async fn list_level(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: bool,
    ) -> Result<(Vec<StoredObject>, Vec<String>), AdapterError> {
        let mut objects = Vec::new();
        let mut prefixes = Vec::new();
        let mut request = self.client.list_objects_v2().bucket(bucket).prefix(prefix);
        if delimiter {
            request = request.delimiter("/");
        }
        let mut pages = request.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(AdapterError::aws("ListObjectsV2"))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                objects.push(StoredObject {
                    key: key.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    time: o.last_modified().map_or(0, |t| t.secs()),
                    etag: o.e_tag().map(|e| e.trim_matches('"').to_string()),
                    sha256: None,
                    encrypted: false,
                    locked: false,
                });
            }
            prefixes.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_string)),
            );
        }
        Ok((objects, prefixes))
    }
}

/// Runs `work` over `items` with at most [`CONCURRENCY`] at once, results in input order.
async fn bounded<I, T, F, Fut>(items: Vec<I>, work: F) -> Result<Vec<T>, AdapterError>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T, AdapterError>> + Send + 'static,
{
    let total = items.len();
    let mut results: Vec<Option<T>> = (0..total).map(|_| None).collect();
    let mut queue = items.into_iter().enumerate();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < CONCURRENCY {
            let Some((i, item)) = queue.next() else { break };
            let work = work.clone();
            running.spawn(async move { (i, work(item).await) });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (i, result) = done.map_err(|e| AdapterError::NotFound(format!("task failed: {e}")))?;
        results[i] = Some(result?);
    }
    Ok(results.into_iter().flatten().collect())
}

impl BackupStore for S3BackupStore {
    async fn folders(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<(bool, Vec<String>), AdapterError> {
        let (objects, folders) = self.list_level(bucket, prefix, true).await?;
        Ok((!objects.is_empty(), folders))
    }

    async fn list_tree(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<StoredObject>, AdapterError> {
        let (mut objects, shards) = self.list_level(bucket, prefix, true).await?;
        let store = self.clone();
        let bucket = bucket.to_string();
        let listed = bounded(shards, move |shard: String| {
            let (store, bucket) = (store.clone(), bucket.clone());
            async move {
                store
                    .list_level(&bucket, &shard, false)
                    .await
                    .map(|(o, _)| o)
            }
        })
        .await?;
        objects.extend(listed.into_iter().flatten());
        Ok(objects)
    }

    async fn facts(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<ObjectFacts>, AdapterError> {
        let client = self.client.clone();
        let bucket = bucket.to_string();
        bounded(keys, move |key: String| {
            let (client, bucket) = (client.clone(), bucket.clone());
            async move {
                let head = client
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                    .send()
                    .await
                    .map_err(AdapterError::aws("HeadObject"))?;
                Ok(ObjectFacts {
                    metadata_time: head.metadata().and_then(|m| {
                        hapilot_core::backup::catalog::time_in_metadata(
                            m.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                        )
                    }),
                    sha256: head.checksum_sha256().map(str::to_string),
                    encrypted: head.server_side_encryption().is_some(),
                    locked: head.object_lock_mode().is_some()
                        && head.object_lock_retain_until_date().is_some(),
                })
            }
        })
        .await
    }

    async fn read_small(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, AdapterError> {
        match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.body
                    .collect()
                    .await
                    .map_err(AdapterError::aws("GetObject"))?
                    .to_vec(),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(AdapterError::aws("GetObject")(e)),
        }
    }

    async fn presigned_get(
        &self,
        bucket: &str,
        key: &str,
        expires: std::time::Duration,
    ) -> Result<String, AdapterError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires)
            .map_err(|e| AdapterError::NotFound(format!("presigning: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(AdapterError::aws("GetObject (presign)"))?;
        Ok(request.uri().to_string())
    }

    async fn verify<T: Send + 'static>(
        &self,
        bucket: &str,
        key: &str,
        check: impl FnOnce(ObjectReader) -> T + Send + 'static,
    ) -> Result<T, AdapterError> {
        let mut body = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(AdapterError::aws("GetObject"))?
            .body;
        // A few chunks in flight: memory stays bounded whatever the object's size.
        let (tx, rx) = mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
        let verifier = tokio::task::spawn_blocking(move || {
            check(ObjectReader {
                rx,
                chunk: bytes::Bytes::new(),
            })
        });
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = chunk.is_err();
            // The verifier may stop early (it found a problem): then nobody listens any more.
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
        drop(tx);
        verifier
            .await
            .map_err(|e| AdapterError::NotFound(format!("verifier of {key} failed: {e}")))
    }
}

/// A blocking [`Read`] over an object's bytes as they download (chunks sent from the async
/// side; a verifier that stops early stops the download).
pub struct ObjectReader {
    rx: mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk = self.chunk.slice(n..);
        Ok(n)
    }
}

/// In-memory [`BackupStore`] for handler unit tests: objects by bucket and key, each with the
/// time a listing reports for it.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryBackupStore {
    objects: std::sync::Arc<std::sync::Mutex<MemoryObjects>>,
}

/// (bucket, key) -> (bytes, listed time).
#[cfg(any(test, feature = "fakes"))]
type MemoryObjects = std::collections::BTreeMap<(String, String), (Vec<u8>, i64)>;

#[cfg(any(test, feature = "fakes"))]
impl MemoryBackupStore {
    /// Stores `bytes` at `bucket`/`key`, listed as written now.
    pub fn insert(&self, bucket: &str, key: &str, bytes: Vec<u8>) {
        self.insert_at(bucket, key, bytes, chrono::Utc::now().timestamp());
    }

    /// Stores `bytes` at `bucket`/`key`, listed as written at `time` (epoch seconds).
    pub fn insert_at(&self, bucket: &str, key: &str, bytes: Vec<u8>, time: i64) {
        self.objects
            .lock()
            .expect("objects")
            .insert((bucket.to_string(), key.to_string()), (bytes, time));
    }

    fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.objects
            .lock()
            .expect("objects")
            .get(&(bucket.to_string(), key.to_string()))
            .map(|(b, _)| b.clone())
    }
}

#[cfg(any(test, feature = "fakes"))]
impl BackupStore for MemoryBackupStore {
    async fn list_tree(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<StoredObject>, AdapterError> {
        let objects = self.objects.lock().expect("objects");
        Ok(objects
            .iter()
            .filter(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .map(|((_, key), (bytes, time))| StoredObject {
                key: key.clone(),
                size: bytes.len() as u64,
                time: *time,
                etag: None,
                sha256: None,
                encrypted: false,
                locked: false,
            })
            .collect())
    }

    async fn folders(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<(bool, Vec<String>), AdapterError> {
        let listed = self.list_tree(bucket, prefix).await?;
        let mut direct = false;
        let mut folders = std::collections::BTreeSet::new();
        for o in listed {
            match o.key[prefix.len()..].split_once('/') {
                Some((folder, _)) => {
                    folders.insert(format!("{prefix}{folder}/"));
                }
                None => direct = true,
            }
        }
        Ok((direct, folders.into_iter().collect()))
    }

    async fn facts(
        &self,
        _bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<ObjectFacts>, AdapterError> {
        Ok(keys.iter().map(|_| ObjectFacts::default()).collect())
    }

    async fn read_small(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, AdapterError> {
        Ok(self.get(bucket, key))
    }

    async fn presigned_get(
        &self,
        bucket: &str,
        key: &str,
        _expires: std::time::Duration,
    ) -> Result<String, AdapterError> {
        Ok(format!("memory://{bucket}/{key}"))
    }

    async fn verify<T: Send + 'static>(
        &self,
        bucket: &str,
        key: &str,
        check: impl FnOnce(ObjectReader) -> T + Send + 'static,
    ) -> Result<T, AdapterError> {
        let bytes = self
            .get(bucket, key)
            .ok_or_else(|| AdapterError::NotFound(format!("s3://{bucket}/{key}")))?;
        let (tx, rx) = mpsc::channel(1);
        tx.send(Ok(bytes::Bytes::from(bytes)))
            .await
            .map_err(|_| AdapterError::NotFound("the reader is gone".into()))?;
        drop(tx);
        tokio::task::spawn_blocking(move || {
            check(ObjectReader {
                rx,
                chunk: bytes::Bytes::new(),
            })
        })
        .await
        .map_err(|e| AdapterError::NotFound(format!("verifier of {key} failed: {e}")))
    }
}
