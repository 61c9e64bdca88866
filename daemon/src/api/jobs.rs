//! Fan-out jobs: `GET /api/v1/jobs` lists them, `GET /api/v1/jobs/{id}` summarises one (counts
//! by status, groups of identical output with folded pod lists, skipped pods and why).

use actix_web::{HttpResponse, web};
use podwrangler::api::{JobPage, JobSummary};
use podwrangler::groups::OutputGrouper;

use super::commands::{cursor, page_limit};
use super::error::ApiError;
use super::{mailbox, store_err};
use crate::server::AppState;
use crate::store::jobs::{GetJob, JobCommands, ListJobs};

/// History rows read per store request while a summary is built: the summary holds one page
/// and one sample per group, never the whole job.
const SUMMARY_PAGE: usize = 500;

/// Query of `GET /api/v1/jobs`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// Page size, 1..=1000 (default 50).
    #[param(schema_with = params::limit)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = params::cursor)]
    pub cursor: Option<String>,
}

mod params {
    use podwrangler::api::limits::*;
    use utoipa::openapi::schema::{ObjectBuilder, Type};

    pub fn limit() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(MAX_PAGE_LIMIT as u32))
            .description(Some("Page size, 1 to 1000 (default 50)."))
    }
    pub fn cursor() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(CURSOR_PATTERN))
            .description(Some(
                "`next_cursor` of the previous page (empty: the first page).",
            ))
    }
}

/// Fan-out jobs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "history",
    params(JobsQuery),
    responses(
        (status = 200, description = "A page of jobs; pass `next_cursor` back as `cursor`", body = JobPage),
        (status = 400, description = "Unknown query parameter", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid limit or cursor", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_jobs(
    state: web::Data<AppState>,
    query: web::Query<JobsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = page_limit(q.limit.as_deref())?;
    let cursor = cursor(q.cursor)?
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|e| ApiError::validation("cursor", e.to_string()))?;
    let page = state
        .store
        .send(ListJobs { limit, cursor })
        .await
        .map_err(mailbox)?
        .map_err(store_err)?;
    Ok(HttpResponse::Ok().json(page))
}

/// One job's summary: its results folded into groups of identical output (stdout, stderr, exit
/// code), largest first, each headed by a compact pod list (`web-[00-41,43-99]`); counts by
/// status; pods not run and why. A job still running is summarised as far as it got.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{id}",
    tag = "history",
    params(("id" = i64, Path, description = "Job id (`job_id` of a fan-out answer)")),
    responses(
        (status = 200, description = "The job's summary", body = JobSummary),
        (status = 404, description = "`job_not_found`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation`: the id is not a number", body = podwrangler::api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`database_unavailable`", body = podwrangler::api::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_job(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::validation("id", format!("{:?} is not a job id", id.as_str())))?;
    let job = state
        .store
        .send(GetJob { id })
        .await
        .map_err(mailbox)?
        .map_err(store_err)?
        .ok_or(ApiError::JobNotFound(id))?;
    let mut grouper = OutputGrouper::new();
    let mut after = 0;
    loop {
        let page = state
            .store
            .send(JobCommands {
                job: id,
                after,
                limit: SUMMARY_PAGE,
            })
            .await
            .map_err(mailbox)?
            .map_err(store_err)?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        let full = page.len() == SUMMARY_PAGE;
        for r in &page {
            grouper.add(r);
        }
        if !full {
            break;
        }
    }
    let grouped = grouper.finish();
    Ok(HttpResponse::Ok().json(JobSummary {
        job,
        counts: grouped.counts,
        groups: grouped.groups,
        skipped: grouped.skipped,
    }))
}
