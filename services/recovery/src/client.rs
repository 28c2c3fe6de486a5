//! The HTTP client of PagoPA's biz-events API (`biz_events.json`): the organization receipt
//! by IUR and IUV, `GET /organizations/{organizationfiscalcode}/receipts/{iur}/paymentoptions/{iuv}`,
//! with the subscription key in `Ocp-Apim-Subscription-Key`.
//!
//! What may pass by itself (no connection, a timeout, 408, 5xx) is retried with the same
//! exponential backoff and jitter as the FdR client (`incasso_store::outbox::retry_delay_ms`).
//! A 429 is *not* retried: the API allows a subscription 10 calls an hour, so a 429 means the
//! hour's calls are spent and the caller stops its pass ([`BizEventsError::RateLimited`], with
//! the `Retry-After` when given). 401/403 say the subscription key is wrong; 404 that PagoPA
//! has no such receipt, with the API's `ProblemJson` detail; any other refusal is final.

use incasso_fdr::client::{path_segment, without_url};
use std::time::Duration;

use rand::Rng;

use incasso_store::outbox::retry_delay_ms;

use crate::receipt::ReceiptRequest;

/// The API Management header carrying the subscription key.
pub const SUBSCRIPTION_KEY_HEADER: &str = "Ocp-Apim-Subscription-Key";

/// Why a call to biz-events failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BizEventsError {
    /// 401 or 403: the subscription key is missing, wrong or not allowed for the creditor.
    #[error(
        "the biz-events API refused the subscription key ({status}): check INCASSO_BIZ_EVENTS_SUBSCRIPTION_KEY or [biz_events] subscription_key"
    )]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// 404: PagoPA has no receipt for this IUR and IUV (yet).
    #[error("not found at PagoPA (404): {detail}")]
    NotFound {
        /// The API's `ProblemJson` title and detail.
        detail: String,
    },
    /// 429: the subscription's calls are spent for now.
    #[error("the biz-events API is rate limiting the subscription (429){}", .retry_after.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The API's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// Still failing after the retries: no connection, a timeout, 408 or 5xx.
    #[error("the biz-events API is unavailable: {reason}")]
    Unavailable {
        /// The last failure.
        reason: String,
    },
    /// A refusal retrying cannot change (400, 422, another 4xx).
    #[error("the biz-events API refused the request: {reason}")]
    Refused {
        /// The status and the API's own words.
        reason: String,
    },
}

/// How the client reaches the API and how hard it tries: the same settings as the FdR
/// client's (base URL, subscription key, timeout, retries, outbound TLS).
pub use incasso_fdr::client::ClientConfig;

/// The client.
#[derive(Debug, Clone)]
pub struct BizEventsClient {
    http: reqwest::Client,
    config: ClientConfig,
}

/// The words of a `ProblemJson` body (`title: detail`), at most 500 characters.
fn problem_words(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let words: Vec<&str> = ["title", "detail"]
        .iter()
        .filter_map(|f| value[*f].as_str())
        .filter(|t| !t.is_empty())
        .collect();
    words.join(": ").chars().take(500).collect()
}

enum Attempt {
    Done(Vec<u8>),
    Again(String),
    Stop(BizEventsError),
}

impl BizEventsClient {
    /// A client for `config`.
    pub fn new(config: ClientConfig) -> Result<Self, reqwest::Error> {
        let (http, config) = config.into_http()?;
        Ok(Self { http, config })
    }

    async fn attempt(&self, url: &str) -> Attempt {
        let mut request = self
            .http
            .get(url)
            .headers(incasso_telemetry::propagation::current_headers())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(key) = &self.config.subscription_key {
            request = request.header(SUBSCRIPTION_KEY_HEADER, key);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Attempt::Again(without_url(&e)),
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
            Err(e) => return Attempt::Again(without_url(&e)),
        };
        match status {
            200 => Attempt::Done(body),
            401 | 403 => Attempt::Stop(BizEventsError::Unauthorized { status }),
            404 => Attempt::Stop(BizEventsError::NotFound {
                detail: problem_words(&body),
            }),
            429 => Attempt::Stop(BizEventsError::RateLimited { retry_after }),
            408 | 500..=599 => Attempt::Again(format!("{status} {}", problem_words(&body))),
            _ => Attempt::Stop(BizEventsError::Refused {
                reason: format!("{status} {}", problem_words(&body)),
            }),
        }
    }

    /// The organization receipt of `asked` (`getOrganizationReceiptIuvIur`): the body of the
    /// 200, as received.
    pub async fn organization_receipt(
        &self,
        asked: &ReceiptRequest,
    ) -> Result<Vec<u8>, BizEventsError> {
        let url = format!(
            "{}/organizations/{}/receipts/{}/paymentoptions/{}",
            self.config.base_url,
            path_segment(&asked.creditor_fiscal_code),
            path_segment(&asked.receipt_id),
            path_segment(&asked.iuv),
        );
        let attempts = self.config.attempts.max(1);
        let mut last = String::new();
        for n in 1..=attempts {
            match self.attempt(&url).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Stop(error) => return Err(error),
                Attempt::Again(reason) => {
                    tracing::debug!(attempt = n, %reason, "biz-events call failed");
                    last = reason;
                    if n < attempts {
                        let base =
                            u64::try_from(self.config.retry_base.as_millis()).unwrap_or(u64::MAX);
                        let max =
                            u64::try_from(self.config.retry_max.as_millis()).unwrap_or(u64::MAX);
                        let jitter = rand::rng().random_range(500..1500);
                        tokio::time::sleep(Duration::from_millis(retry_delay_ms(
                            i32::try_from(n).unwrap_or(i32::MAX),
                            base,
                            max,
                            jitter,
                        )))
                        .await;
                    }
                }
            }
        }
        Err(BizEventsError::Unavailable { reason: last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_escape_what_a_psp_may_put_in_an_iur() {
        assert_eq!(path_segment("01199250158"), "01199250158");
        assert_eq!(path_segment("IUR a/b"), "IUR%20a%2Fb");
    }

    #[test]
    fn a_problem_is_told_in_its_own_words() {
        assert_eq!(
            problem_words(br#"{"title":"Not found","status":404,"detail":"No receipt"}"#),
            "Not found: No receipt"
        );
        assert_eq!(problem_words(b"<html>"), "");
    }
}
