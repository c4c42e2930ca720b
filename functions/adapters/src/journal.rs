//! The run journal and reports in the audit bucket.
//!
//! Layout: `runs/<state machine>/<execution>/<seq>-<state>.json`, one object per step, where
//! `<seq>` is the time the state was entered (sortable), so listing the prefix reads the run in
//! order. Objects are written with a SHA-256 checksum.

use std::future::Future;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;

use crate::AdapterError;

/// Writes journal entries and reads them back.
pub trait Journal: Send + Sync {
    /// Writes `entry` under `key` (overwriting: a repeated step leaves one entry).
    fn put(
        &self,
        key: &str,
        entry: &serde_json::Value,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// Reads the entry at `key`, if any.
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, AdapterError>> + Send;
    /// Every key under `prefix`, sorted.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, AdapterError>> + Send;
    /// Writes a document for people (a Markdown report) under `key`.
    fn put_text(
        &self,
        key: &str,
        body: &str,
        content_type: &str,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
    /// Writes `entry` under `key` only if nothing is there: `true` when this call created it,
    /// `false` when it existed (S3: `If-None-Match: *`, atomic). The default, for fakes, reads
    /// then writes.
    fn put_new(
        &self,
        key: &str,
        entry: &serde_json::Value,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send {
        async move {
            if self.get(key).await?.is_some() {
                return Ok(false);
            }
            self.put(key, entry).await?;
            Ok(true)
        }
    }
    /// The entry at `key` with its version tag (S3: the ETag), if any. The default, for fakes,
    /// tags an entry with its own text.
    fn get_tagged(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(serde_json::Value, String)>, AdapterError>> + Send
    {
        async move { Ok(self.get(key).await?.map(|v| (v.clone(), v.to_string()))) }
    }
    /// Replaces the entry at `key` only if it is still the version `tag` names: `true` when
    /// replaced (S3: `If-Match`, atomic). The default, for fakes, reads then writes.
    fn replace_if(
        &self,
        key: &str,
        tag: &str,
        entry: &serde_json::Value,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send {
        async move {
            match self.get_tagged(key).await? {
                Some((_, now)) if now == tag => {
                    self.put(key, entry).await?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
    }
    /// Removes `key` (nothing there is fine). The default, for fakes, refuses.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), AdapterError>> + Send {
        async move {
            Err(AdapterError::NotFound(format!(
                "this journal cannot delete {key}"
            )))
        }
    }
}

/// The journal key of one step.
pub fn step_key(machine: &str, execution: &str, entered_time: &str, state: &str) -> String {
    let seq: String = entered_time
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    format!("runs/{machine}/{execution}/{seq}-{state}.json")
}

/// [`Journal`] on S3.
#[derive(Debug, Clone)]
pub struct S3Journal {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Journal {
    /// An S3 client from `config` writing to `bucket`.
    pub fn from_sdk(config: &aws_config::SdkConfig, bucket: &str) -> Self {
        Self::new(crate::sdk::s3(config), bucket)
    }

    /// Uses `bucket`.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> Self {
        Self {
            client,
            bucket: bucket.to_string(),
        }
    }
}

impl S3Journal {
    /// A `PutObject` of `entry` as JSON under `key`, with its checksum; the caller adds the
    /// condition.
    fn json_put(
        &self,
        key: &str,
        entry: &serde_json::Value,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        let body = serde_json::to_string_pretty(entry).unwrap_or_default();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.into_bytes()))
    }
}

/// A conditional write's answer: written, or not because its condition did not hold (one of
/// `not_met`, the statuses S3 answers for it).
fn written_unless_refused<T>(
    put: Result<
        T,
        aws_sdk_s3::error::SdkError<
            aws_sdk_s3::operation::put_object::PutObjectError,
            aws_sdk_s3::config::http::HttpResponse,
        >,
    >,
    not_met: &[u16],
) -> Result<bool, AdapterError> {
    match put {
        Ok(_) => Ok(true),
        Err(e)
            if e.raw_response()
                .is_some_and(|r| not_met.contains(&r.status().as_u16())) =>
        {
            Ok(false)
        }
        Err(e) => Err(AdapterError::aws("PutObject")(e)),
    }
}

impl Journal for S3Journal {
    async fn put(&self, key: &str, entry: &serde_json::Value) -> Result<(), AdapterError> {
        let body = serde_json::to_string_pretty(entry).unwrap_or_default();
        self.put_text(key, &body, "application/json").await
    }

    async fn put_text(
        &self,
        key: &str,
        body: &str,
        content_type: &str,
    ) -> Result<(), AdapterError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .map_err(AdapterError::aws("PutObject"))?;
        Ok(())
    }

    async fn put_new(&self, key: &str, entry: &serde_json::Value) -> Result<bool, AdapterError> {
        written_unless_refused(
            self.json_put(key, entry).if_none_match("*").send().await,
            &[412],
        )
    }

    async fn get_tagged(
        &self,
        key: &str,
    ) -> Result<Option<(serde_json::Value, String)>, AdapterError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let tag = out.e_tag().unwrap_or_default().to_string();
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| AdapterError::aws("GetObject")(e))?
                    .into_bytes();
                Ok(serde_json::from_slice(&bytes).ok().map(|v| (v, tag)))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(AdapterError::aws("GetObject")(e)),
        }
    }

    async fn replace_if(
        &self,
        key: &str,
        tag: &str,
        entry: &serde_json::Value,
    ) -> Result<bool, AdapterError> {
        // Changed (412) or gone (404) since it was read: not replaced.
        written_unless_refused(
            self.json_put(key, entry).if_match(tag).send().await,
            &[404, 412],
        )
    }

    async fn delete(&self, key: &str) -> Result<(), AdapterError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(AdapterError::aws("DeleteObject"))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<serde_json::Value>, AdapterError> {
        Ok(self.get_tagged(key).await?.map(|(entry, _)| entry))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, AdapterError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(AdapterError::aws("ListObjectsV2"))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        keys.sort();
        Ok(keys)
    }
}

/// In-memory [`Journal`] for handler unit tests: every entry and document kept by key.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryJournal {
    entries:
        std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, serde_json::Value>>>,
    texts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryJournal {
    /// The document written under `key`.
    pub fn text(&self, key: &str) -> Option<String> {
        self.texts.lock().expect("texts").get(key).cloned()
    }
}

#[cfg(any(test, feature = "fakes"))]
impl Journal for MemoryJournal {
    async fn put(&self, key: &str, entry: &serde_json::Value) -> Result<(), AdapterError> {
        self.entries
            .lock()
            .expect("entries")
            .insert(key.to_string(), entry.clone());
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<serde_json::Value>, AdapterError> {
        Ok(self.entries.lock().expect("entries").get(key).cloned())
    }

    async fn put_new(&self, key: &str, entry: &serde_json::Value) -> Result<bool, AdapterError> {
        let mut entries = self.entries.lock().expect("entries");
        if entries.contains_key(key) {
            return Ok(false);
        }
        entries.insert(key.to_string(), entry.clone());
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<(), AdapterError> {
        self.entries.lock().expect("entries").remove(key);
        self.texts.lock().expect("texts").remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, AdapterError> {
        let entries = self.entries.lock().expect("entries");
        let texts = self.texts.lock().expect("texts");
        let mut keys: Vec<String> = entries
            .keys()
            .chain(texts.keys())
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn put_text(
        &self,
        key: &str,
        body: &str,
        _content_type: &str,
    ) -> Result<(), AdapterError> {
        self.texts
            .lock()
            .expect("texts")
            .insert(key.to_string(), body.to_string());
        Ok(())
    }
}
