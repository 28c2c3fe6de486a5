//! The HTTP client of PagoPA's FdR organization API (`pagopa-fdr.org.openapi.json`): the list
//! of published flows, a flow revision's header and the pages of its payments. Bodies of a
//! flow are handed back as received, for the import to read and hash; only the paging
//! envelope and the list items are read here. Calls that may pass (no connection, a timeout,
//! 408, 429, 5xx) are retried with exponential backoff and jitter, a 429's `Retry-After`
//! respected up to the backoff's cap; 401/403 say the subscription key is wrong, 404 that
//! the API does not have what was asked, and any other refusal is final.

use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use incasso_store::outbox::retry_delay_ms;

/// The API Management header carrying the subscription key.
pub const SUBSCRIPTION_KEY_HEADER: &str = "Ocp-Apim-Subscription-Key";

/// Why a call to the FdR API failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FdrError {
    /// 401 or 403: the subscription key is missing, wrong or not allowed for the creditor.
    #[error(
        "the FdR API refused the subscription key ({status}) for {call}: check INCASSO_FDR_SUBSCRIPTION_KEY or [fdr] subscription_key"
    )]
    Unauthorized {
        /// What was asked.
        call: String,
        /// 401 or 403.
        status: u16,
    },
    /// Still failing after the retries: no connection, a timeout, 408, 429 or 5xx.
    #[error("the FdR API is unavailable for {call}: {reason}")]
    Unavailable {
        /// What was asked.
        call: String,
        /// The last failure.
        reason: String,
    },
    /// 404: the API does not have what was asked (a revision no longer readable, say).
    #[error("the FdR API does not have {call} (404)")]
    NotFound {
        /// What was asked.
        call: String,
    },
    /// A refusal retrying cannot change (400, another 4xx), or an answer that is not the
    /// API's.
    #[error("the FdR API refused {call}: {reason}")]
    Refused {
        /// What was asked.
        call: String,
        /// The status and the API's own words.
        reason: String,
    },
}

/// How the client reaches the API and how hard it tries.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://api.platform.pagopa.it/fdr-org/service/v1`.
    pub base_url: String,
    /// The subscription key (`Ocp-Apim-Subscription-Key`).
    pub subscription_key: Option<String>,
    /// Per-request timeout, connection included.
    pub request_timeout: Duration,
    /// Tries per call before giving up (1 = no retry).
    pub attempts: u32,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// The CA and client certificate of the HTTPS calls.
    pub tls: incasso_relay::outbound_tls::OutboundTls,
}

impl ClientConfig {
    /// The HTTP client these settings make (TLS, per-request timeout), and the settings with
    /// the base URL's trailing slashes removed, so paths are appended to it as they are.
    pub fn into_http(self) -> Result<(reqwest::Client, Self), reqwest::Error> {
        let http = self.tls.reqwest()?.timeout(self.request_timeout).build()?;
        let config = Self {
            base_url: self.base_url.trim_end_matches('/').to_owned(),
            ..self
        };
        Ok((http, config))
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field(
                "subscription_key",
                &self.subscription_key.as_ref().map(|_| "[set]"),
            )
            .field("request_timeout", &self.request_timeout)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// The paging envelope of every list (`Metadata`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PageMetadata {
    /// This page's number, from 1.
    pub page_number: Option<i64>,
    /// How many pages there are.
    pub tot_page: Option<i64>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    metadata: Option<PageMetadata>,
    data: Option<Vec<T>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlowByPsp {
    fdr: Option<String>,
    psp_id: Option<String>,
    revision: Option<i64>,
    published: Option<String>,
    flow_date: Option<String>,
}

/// One published flow as listed: its latest revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFlow {
    /// The flow's id (`fdr`).
    pub fdr: String,
    /// The PSP (`pspId`).
    pub psp_id: String,
    /// The latest revision.
    pub revision: u32,
    /// When that revision was published.
    pub published: OffsetDateTime,
    /// The flow's date (`flowDate`), when given.
    pub flow_date: Option<OffsetDateTime>,
}

/// A query on the list of published flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListQuery {
    /// Only flows published after this instant (`publishedGt`).
    pub published_gt: OffsetDateTime,
    /// Only flows dated after this instant (`flowDate`).
    pub flow_date: OffsetDateTime,
    /// Items per page, 1..=1000.
    pub size: u32,
}

/// The instant as the API's query parameters take it: UTC, whole seconds, rounded down
/// (the bounds are strict lower bounds, so rounding down never loses a flow).
pub fn query_instant(instant: OffsetDateTime) -> String {
    let utc = instant.to_offset(time::UtcOffset::UTC);
    let whole = utc.replace_nanosecond(0).unwrap_or(utc);
    whole.format(&Rfc3339).unwrap_or_default()
}

/// The client.
#[derive(Debug, Clone)]
pub struct FdrClient {
    http: reqwest::Client,
    config: ClientConfig,
}

/// A path segment: RFC 3986's unreserved characters as they are, anything else
/// percent-encoded (flow ids are `[A-Za-z0-9_-]` and fiscal codes digits, but an IUR is a
/// PSP's free text). Shared by the PagoPA REST clients.
pub fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A reqwest error without the URL (which may carry identifiers worth keeping out of logs).
pub fn without_url(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    }
}

enum Attempt {
    Done(Vec<u8>),
    Again(String, Option<Duration>),
    Stop(FdrError),
}

impl FdrClient {
    /// A client for `config`.
    pub fn new(config: ClientConfig) -> Result<Self, reqwest::Error> {
        let (http, config) = config.into_http()?;
        Ok(Self { http, config })
    }

    async fn attempt(&self, call: &str, url: &str, query: &[(&str, String)]) -> Attempt {
        let mut request = self
            .http
            .get(url)
            .query(query)
            .headers(incasso_telemetry::propagation::current_headers())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(key) = &self.config.subscription_key {
            request = request.header(SUBSCRIPTION_KEY_HEADER, key);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Attempt::Again(without_url(&e), None),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(e) => return Attempt::Again(without_url(&e), None),
        };
        match status {
            200 => Attempt::Done(body),
            401 | 403 => Attempt::Stop(FdrError::Unauthorized {
                call: call.to_owned(),
                status,
            }),
            408 | 429 | 500..=599 => {
                Attempt::Again(format!("{status} {}", api_words(&body)), retry_after)
            }
            404 => Attempt::Stop(FdrError::NotFound {
                call: call.to_owned(),
            }),
            _ => Attempt::Stop(FdrError::Refused {
                call: call.to_owned(),
                reason: format!("{status} {}", api_words(&body)),
            }),
        }
    }

    /// GETs `path` with `query`, retrying what may pass; the body of the 200.
    async fn get(
        &self,
        call: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>, FdrError> {
        let url = format!("{}{path}", self.config.base_url);
        let attempts = self.config.attempts.max(1);
        let mut last = String::new();
        for n in 1..=attempts {
            match self.attempt(call, &url, query).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Stop(error) => return Err(error),
                Attempt::Again(reason, retry_after) => {
                    tracing::debug!(call, attempt = n, %reason, "FdR API call failed");
                    last = reason;
                    if n < attempts {
                        let base =
                            u64::try_from(self.config.retry_base.as_millis()).unwrap_or(u64::MAX);
                        let max =
                            u64::try_from(self.config.retry_max.as_millis()).unwrap_or(u64::MAX);
                        let jitter = rand::rng().random_range(500..1500);
                        let backoff = Duration::from_millis(retry_delay_ms(
                            i32::try_from(n).unwrap_or(i32::MAX),
                            base,
                            max,
                            jitter,
                        ));
                        // A 429 says when to come back; never sooner than the backoff.
                        let pause = retry_after
                            .map(|asked| asked.min(self.config.retry_max).max(backoff))
                            .unwrap_or(backoff);
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
        Err(FdrError::Unavailable {
            call: call.to_owned(),
            reason: last,
        })
    }

    /// One page of the flows published for `organization` (`GET /organizations/{id}/fdrs`),
    /// with the number of pages there are.
    pub async fn published_flows(
        &self,
        organization: &str,
        query: ListQuery,
        page: u32,
    ) -> Result<(Vec<PublishedFlow>, u32), FdrError> {
        let call = format!("the published flows of {organization} (page {page})");
        let body = self
            .get(
                &call,
                &format!("/organizations/{}/fdrs", path_segment(organization)),
                &[
                    ("publishedGt", query_instant(query.published_gt)),
                    ("flowDate", query_instant(query.flow_date)),
                    ("page", page.to_string()),
                    ("size", query.size.to_string()),
                ],
            )
            .await?;
        let not_the_api = |reason: String| FdrError::Refused {
            call: call.clone(),
            reason,
        };
        let envelope: Envelope<FlowByPsp> = serde_json::from_slice(&body)
            .map_err(|e| not_the_api(format!("not a list of flows: {e}")))?;
        let mut flows = Vec::new();
        for (i, item) in envelope.data.unwrap_or_default().into_iter().enumerate() {
            let missing = |f: &str| not_the_api(format!("data[{i}].{f} is missing or invalid"));
            let published = item
                .published
                .as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .ok_or_else(|| missing("published"))?;
            flows.push(PublishedFlow {
                fdr: item
                    .fdr
                    .filter(|f| !f.is_empty())
                    .ok_or_else(|| missing("fdr"))?,
                psp_id: item
                    .psp_id
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| missing("pspId"))?,
                revision: item
                    .revision
                    .and_then(|r| u32::try_from(r).ok())
                    .filter(|r| *r >= 1)
                    .ok_or_else(|| missing("revision"))?,
                published,
                flow_date: item
                    .flow_date
                    .as_deref()
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
            });
        }
        Ok((flows, pages_of(envelope.metadata)))
    }

    /// A flow revision's header, as received.
    pub async fn flow_header(
        &self,
        organization: &str,
        fdr: &str,
        revision: u32,
        psp_id: &str,
    ) -> Result<Vec<u8>, FdrError> {
        self.get(
            &format!("flow {fdr} revision {revision} of PSP {psp_id}"),
            &revision_path(organization, fdr, revision, psp_id),
            &[],
        )
        .await
    }

    /// Every page of a flow revision's payments, as received, in order.
    pub async fn flow_payments(
        &self,
        organization: &str,
        fdr: &str,
        revision: u32,
        psp_id: &str,
        size: u32,
    ) -> Result<Vec<Vec<u8>>, FdrError> {
        let path = format!(
            "{}/payments",
            revision_path(organization, fdr, revision, psp_id)
        );
        let mut pages = Vec::new();
        let mut page = 1u32;
        loop {
            let call = format!("the payments of flow {fdr} revision {revision} (page {page})");
            let body = self
                .get(
                    &call,
                    &path,
                    &[("page", page.to_string()), ("size", size.to_string())],
                )
                .await?;
            let envelope: Envelope<serde_json::Value> =
                serde_json::from_slice(&body).map_err(|e| FdrError::Refused {
                    call: call.clone(),
                    reason: format!("not a page of payments: {e}"),
                })?;
            let total = pages_of(envelope.metadata);
            pages.push(body);
            if page >= total || page >= MAX_PAGES {
                return Ok(pages);
            }
            page += 1;
        }
    }
}

/// A bound on pages followed, against an API that never stops paging.
const MAX_PAGES: u32 = 100_000;

fn pages_of(metadata: Option<PageMetadata>) -> u32 {
    metadata
        .and_then(|m| m.tot_page)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
        .max(1)
}

fn revision_path(organization: &str, fdr: &str, revision: u32, psp_id: &str) -> String {
    format!(
        "/organizations/{}/fdrs/{}/revisions/{revision}/psps/{}",
        path_segment(organization),
        path_segment(fdr),
        path_segment(psp_id)
    )
}

/// The API's reason from an `ErrorResponse` body (its `appErrorCode` and messages), cut.
fn api_words(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let mut words: Vec<String> = Vec::new();
    if let Some(code) = value["appErrorCode"].as_str() {
        words.push(code.to_owned());
    }
    if let Some(errors) = value["errors"].as_array() {
        for error in errors {
            let path = error["path"].as_str().unwrap_or_default();
            let message = error["message"].as_str().unwrap_or_default();
            words.push(if path.is_empty() {
                message.to_owned()
            } else {
                format!("{path}: {message}")
            });
        }
    }
    let text = words.join(" ");
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn query_instants_are_utc_whole_seconds_rounded_down() {
        assert_eq!(
            query_instant(datetime!(2026-11-24 07:00:30.999 +01:00)),
            "2026-11-24T06:00:30Z"
        );
    }

    #[test]
    fn the_api_reason_is_read_from_its_error_response() {
        let body = br#"{"httpStatusCode":400,"appErrorCode":"FDR-0702","errors":[{"path":"publishedGt","message":"too old"}]}"#;
        assert_eq!(api_words(body), "FDR-0702 publishedGt: too old");
        assert_eq!(api_words(b"<html>"), "");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(
            path_segment("2026-11-23ABI03069-0001"),
            "2026-11-23ABI03069-0001"
        );
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
