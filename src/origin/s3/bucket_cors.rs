//! A bucket's CORS configuration: PutBucketCors, GetBucketCors, DeleteBucketCors (the
//! rules themselves, and how preflights are answered, are in [`crate::origin::cors`]).

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::error::map_err;
use crate::origin::store::DiskStore;
use crate::policy::cors::{self, CorsRule};

pub(super) async fn put_bucket_cors(
    store: &DiskStore,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let input = req.input;
    let rules: Vec<CorsRule> = input
        .cors_configuration
        .cors_rules
        .into_iter()
        .map(|r| CorsRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: r.allowed_headers.unwrap_or_default(),
            expose_headers: r.expose_headers.unwrap_or_default(),
            max_age_seconds: r.max_age_seconds.and_then(|a| u32::try_from(a).ok()),
        })
        .collect();
    cors::validate(&rules).map_err(|m| s3_error!(InvalidRequest, "{m}"))?;
    store.set_bucket_cors(&input.bucket, Some(rules)).map_err(map_err)?;
    Ok(S3Response::new(PutBucketCorsOutput::default()))
}

pub(super) async fn get_bucket_cors(
    store: &DiskStore,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let rules = store.bucket_cors(&req.input.bucket).map_err(map_err)?;
    let Some(rules) = rules else {
        return Err(s3_error!(
            NoSuchCORSConfiguration,
            "The CORS configuration does not exist"
        ));
    };
    let cors_rules = rules
        .into_iter()
        .map(|r| CORSRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
            expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
            max_age_seconds: r.max_age_seconds.and_then(|a| i32::try_from(a).ok()),
        })
        .collect();
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(cors_rules),
    }))
}

pub(super) async fn delete_bucket_cors(
    store: &DiskStore,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    store.set_bucket_cors(&req.input.bucket, None).map_err(map_err)?;
    Ok(S3Response::new(DeleteBucketCorsOutput::default()))
}
