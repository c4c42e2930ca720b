//! Backup catalogs as the backup jobs leave them: real Redis RDB files, objects uploaded
//! encrypted and locked as the policies ask.

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockMode, ServerSideEncryption};
use hapilot::local::systems::barman::BackupObject as Object;

/// An RDB file written by a real redis-server (`SAVE`) holding `keys` gateway-like keys.
pub async fn redis_rdb(keys: usize) -> Vec<u8> {
    hapilot::local::systems::redis::redis_rdb(keys)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Uploads `objects` into an existing bucket, encrypted (SSE-S3) and locked (governance, one
/// day) except the keys in `plain`.
pub async fn put_all(s3: &aws_sdk_s3::Client, bucket: &str, objects: &[Object], plain: &[String]) {
    let until = DateTime::from_secs(chrono::Utc::now().timestamp() + 86_400);
    for o in objects {
        let mut put = s3
            .put_object()
            .bucket(bucket)
            .key(&o.key)
            .body(ByteStream::from(o.bytes.clone()));
        if !plain.contains(&o.key) {
            put = put
                .server_side_encryption(ServerSideEncryption::Aes256)
                .object_lock_mode(ObjectLockMode::Governance)
                .object_lock_retain_until_date(until);
        }
        put.send()
            .await
            .unwrap_or_else(|e| panic!("uploading {}: {e:?}", o.key));
    }
}
