//! Access control: who may call which RPC, and on which creditors and kinds. The
//! [`AccessLayer`] runs around every gRPC service: it maps the client identity of the
//! connection ([`PeerIdentity`], from the client certificate) to its configured [`Grant`],
//! refuses what the role may never call (UNAUTHENTICATED without an identity,
//! PERMISSION_DENIED out of scope) and hands the handlers a [`Caller`] in the request
//! extensions. Decisions that need the resource (a backend reading a position by id) are
//! taken by the same [`Caller`] through [`Caller::check_position`], so every rule and every
//! denial log is in this module. With no clients configured (the plaintext development
//! default) the policy is [`AccessPolicy::open`]: every caller may do everything.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;

use incasso_domain::debt_position::DebtKind;

/// What a client does with incasso: the role of its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A municipal backend: its own creditors × kinds on `NoticeService`.
    Backend,
    /// The Fascicolo del Cittadino: `CitizenPaymentsService`.
    Fascicolo,
    /// An auditor: `LedgerService` and read-only reconciliation.
    Auditor,
    /// Finance: `ReconciliationService`, `ReceiptService` and the ledger's reports.
    Finance,
    /// An operator: parked receipts.
    Operator,
}

impl Role {
    /// The configured name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backend => "backend",
            Self::Fascicolo => "fascicolo",
            Self::Auditor => "auditor",
            Self::Finance => "finance",
            Self::Operator => "operator",
        }
    }

    /// The role from its configured name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Backend,
            Self::Fascicolo,
            Self::Auditor,
            Self::Finance,
            Self::Operator,
        ]
        .into_iter()
        .find(|role| role.as_str() == name)
    }
}

/// Whether a backend may change what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Read only.
    Read,
    /// Read and write.
    Write,
}

/// What one client identity may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// The creditors (fiscal codes) a backend works for.
    pub creditors: BTreeSet<String>,
    /// The kinds a backend works on.
    pub kinds: HashSet<DebtKind>,
    /// Whether a backend may write.
    pub access: Access,
}

/// Every configured client identity and its grant, or no check at all.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    /// `None`: open (no client authentication configured).
    clients: Option<BTreeMap<String, Arc<Grant>>>,
}

impl AccessPolicy {
    /// No check: every caller may call everything. Only for the plaintext development
    /// default and for TLS without client certificates.
    pub fn open() -> Self {
        Self { clients: None }
    }

    /// Each identity (a DNS SAN or subject CN of a client certificate) with its grant; any
    /// other caller is refused.
    pub fn by_identity(clients: impl IntoIterator<Item = (String, Grant)>) -> Self {
        Self {
            clients: Some(
                clients
                    .into_iter()
                    .map(|(identity, grant)| (identity, Arc::new(grant)))
                    .collect(),
            ),
        }
    }

    /// Whether every call is allowed.
    pub fn is_open(&self) -> bool {
        self.clients.is_none()
    }

    /// The caller of `rpc` (a gRPC path) over a connection whose client certificate names
    /// `peer`, or why the call is refused.
    fn resolve(&self, rpc: &str, peer: Option<&PeerIdentity>) -> Result<Caller, Denial> {
        let Some(clients) = &self.clients else {
            return Ok(Caller {
                identity: None,
                grant: None,
                rpc: rpc.to_owned(),
            });
        };
        let names = peer.map(|p| p.names.as_slice()).unwrap_or_default();
        let Some(first) = names.first() else {
            return Err(Denial::unauthenticated(rpc, "no client certificate"));
        };
        let Some((identity, grant)) = names
            .iter()
            .find_map(|name| clients.get_key_value(name.as_str()))
        else {
            return Err(Denial::denied(
                first,
                rpc,
                "the identity has no role configured",
            ));
        };
        let caller = Caller {
            identity: Some(identity.clone()),
            grant: Some(grant.clone()),
            rpc: rpc.to_owned(),
        };
        match rpc_rule(grant, rpc) {
            Ok(()) => Ok(caller),
            Err(reason) => Err(Denial::denied(identity, rpc, reason)),
        }
    }
}

/// The names the verified client certificate of a connection carries, in the order they are
/// matched against the configured identities: its DNS SANs, then its subject CN. Empty when
/// the client presented no certificate. The TLS listener puts it in every request's
/// extensions.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity {
    /// The client's address.
    pub remote_addr: Option<SocketAddr>,
    /// DNS SANs, then the subject CN.
    pub names: Vec<String>,
}

/// Which RPCs a role may call: (service, method or `*`, role, access a backend needs).
/// Anything not listed is refused.
#[rustfmt::skip]
const RULES: &[(&str, &str, Role, Access)] = &[
    ("incasso.v1.NoticeService", "GetDebtPosition", Role::Backend, Access::Read),
    ("incasso.v1.NoticeService", "ListDebtPositions", Role::Backend, Access::Read),
    ("incasso.v1.NoticeService", "GetPayableAmount", Role::Backend, Access::Read),
    ("incasso.v1.NoticeService", "CreateDebtPosition", Role::Backend, Access::Write),
    ("incasso.v1.NoticeService", "UpdateDebtPosition", Role::Backend, Access::Write),
    ("incasso.v1.NoticeService", "CancelDebtPosition", Role::Backend, Access::Write),
    ("incasso.v1.NoticeService", "BulkCreateDebtPositions", Role::Backend, Access::Write),
    ("incasso.v1.CitizenPaymentsService", "*", Role::Fascicolo, Access::Read),
    ("incasso.v1.LedgerService", "*", Role::Auditor, Access::Read),
    ("incasso.v1.LedgerService", "GetBalances", Role::Finance, Access::Read),
    ("incasso.v1.LedgerService", "GetTrialBalance", Role::Finance, Access::Read),
    ("incasso.v1.ReconciliationService", "ListTransfers", Role::Auditor, Access::Read),
    ("incasso.v1.ReconciliationService", "GetTransferHistory", Role::Auditor, Access::Read),
    ("incasso.v1.ReconciliationService", "ListReportingFlows", Role::Auditor, Access::Read),
    ("incasso.v1.ReconciliationService", "ListTreasuryCredits", Role::Auditor, Access::Read),
    ("incasso.v1.ReconciliationService", "ListTreasuryReversals", Role::Auditor, Access::Read),
    ("incasso.v1.ReconciliationService", "GetSummary", Role::Auditor, Access::Read),
    ("incasso.v1.ReconciliationService", "*", Role::Finance, Access::Read),
    ("incasso.v1.ReceiptService", "ListReceipts", Role::Finance, Access::Read),
    ("incasso.v1.ReceiptService", "ExportReceipts", Role::Finance, Access::Read),
    ("incasso.v1.ReceiptService", "GetReceipt", Role::Finance, Access::Read),
    ("incasso.v1.ReceiptService", "ListReceiptConflicts", Role::Finance, Access::Read),
    ("incasso.v1.ReceiptService", "ListParkedReceipts", Role::Operator, Access::Read),
    ("incasso.v1.ReceiptService", "RetryParkedReceipts", Role::Operator, Access::Read),
];

/// Services every known identity may call: the descriptions of the API.
const REFLECTION: &[&str] = &[
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Services anyone may call, even without a certificate: health carries no data.
const PUBLIC: &[&str] = &["grpc.health.v1.Health"];

/// `/package.Service/Method` split in service and method.
fn split_rpc(rpc: &str) -> (&str, &str) {
    let path = rpc.strip_prefix('/').unwrap_or(rpc);
    path.split_once('/').unwrap_or((path, ""))
}

/// Whether `grant` allows calling `rpc` at all (the resource is checked later).
fn rpc_rule(grant: &Grant, rpc: &str) -> Result<(), &'static str> {
    let (service, method) = split_rpc(rpc);
    if REFLECTION.contains(&service) {
        return Ok(());
    }
    let mut listed = false;
    for &(rule_service, rule_method, role, need) in RULES {
        if rule_service != service || (rule_method != "*" && rule_method != method) {
            continue;
        }
        listed = true;
        if role != grant.role {
            continue;
        }
        if need == Access::Write && grant.access < Access::Write {
            return Err("the identity has read-only access");
        }
        return Ok(());
    }
    if listed {
        Err("the role may not call this RPC")
    } else {
        Err("unknown RPC")
    }
}

/// A refusal, logged once where it is decided.
struct Denial {
    status: Status,
}

impl Denial {
    fn unauthenticated(rpc: &str, reason: &'static str) -> Self {
        tracing::warn!(rpc, reason, "access denied: unauthenticated");
        Self {
            status: Status::unauthenticated(format!(
                "{reason}: present a client certificate issued by the configured CA"
            )),
        }
    }

    fn denied(identity: &str, rpc: &str, reason: &'static str) -> Self {
        tracing::warn!(identity, rpc, reason, "access denied");
        Self {
            status: Status::permission_denied(format!("{identity} may not call {rpc}: {reason}")),
        }
    }
}

/// The caller of one RPC, as the [`AccessLayer`] resolved it: in the request extensions of
/// every call that got past it.
#[derive(Debug, Clone)]
pub struct Caller {
    identity: Option<String>,
    /// `None`: unrestricted (open policy).
    grant: Option<Arc<Grant>>,
    rpc: String,
}

impl Caller {
    /// The configured identity, or `None` under the open policy.
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// Whether the caller may `need` a debt position of `creditor` and `kind` (`None` when
    /// the request leaves the kind out: validation refuses it later). PERMISSION_DENIED,
    /// logged, when not: also for a position that exists (AIP-211), never NOT_FOUND.
    pub fn check_position(
        &self,
        creditor: &str,
        kind: Option<DebtKind>,
        need: Access,
    ) -> Result<(), Status> {
        let Some(grant) = &self.grant else {
            return Ok(());
        };
        let reason = if grant.role != Role::Backend {
            Some("only backends work on debt positions")
        } else if need > grant.access {
            Some("the identity has read-only access")
        } else if !grant.creditors.contains(creditor.trim()) {
            Some("the creditor is out of the identity's scope")
        } else if kind.is_some_and(|k| !grant.kinds.contains(&k)) {
            Some("the kind is out of the identity's scope")
        } else {
            None
        };
        match reason {
            None => Ok(()),
            Some(reason) => {
                let identity = self.identity.as_deref().unwrap_or_default();
                Err(Denial::denied(identity, &self.rpc, reason).status)
            }
        }
    }

    /// The creditors and kinds a list may return, or `None` for all of them.
    pub fn position_scope(&self) -> Option<(Vec<String>, Vec<DebtKind>)> {
        let grant = self.grant.as_ref()?;
        Some((
            grant.creditors.iter().cloned().collect(),
            grant.kinds.iter().copied().collect(),
        ))
    }
}

/// The caller the [`AccessLayer`] put in `request`. A request that did not go through the
/// layer is refused: handlers never run unchecked.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("a gRPC call reached a handler without the access layer");
            Status::unauthenticated("no access decision for this call")
        })
}

/// Wraps the gRPC routes in [`AccessControl`].
#[derive(Debug, Clone)]
pub struct AccessLayer {
    policy: Arc<AccessPolicy>,
}

impl AccessLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: AccessPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl<S> tower_layer::Layer<S> for AccessLayer {
    type Service = AccessControl<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessControl {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// Refuses calls the caller's role may not make and passes the others on with their
/// [`Caller`]; see the module documentation.
#[derive(Debug, Clone)]
pub struct AccessControl<S> {
    inner: S,
    policy: Arc<AccessPolicy>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for AccessControl<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let rpc = request.uri().path().to_owned();
        if PUBLIC.contains(&split_rpc(&rpc).0) {
            return Box::pin(self.inner.call(request));
        }
        let peer = request.extensions().get::<PeerIdentity>();
        match self.policy.resolve(&rpc, peer) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                // The clone that was made ready serves this call; the fresh one waits for
                // the next poll_ready.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { inner.call(request).await })
            }
            Err(denial) => Box::pin(std::future::ready(Ok(denial.status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(access: Access) -> Grant {
        Grant {
            role: Role::Backend,
            creditors: ["01199250158".to_owned()].into(),
            kinds: [DebtKind::Tari].into(),
            access,
        }
    }

    fn role(role: Role) -> Grant {
        Grant {
            role,
            creditors: BTreeSet::new(),
            kinds: HashSet::new(),
            access: Access::Read,
        }
    }

    fn policy() -> AccessPolicy {
        AccessPolicy::by_identity([
            ("tributi".to_owned(), backend(Access::Write)),
            ("tributi-ro".to_owned(), backend(Access::Read)),
            ("fascicolo".to_owned(), role(Role::Fascicolo)),
            ("audit".to_owned(), role(Role::Auditor)),
            ("finance".to_owned(), role(Role::Finance)),
            ("ops".to_owned(), role(Role::Operator)),
        ])
    }

    fn call(identity: Option<&str>, rpc: &str) -> Result<Caller, Code> {
        let peer = identity.map(|name| PeerIdentity {
            remote_addr: None,
            names: vec!["unrelated.example".to_owned(), name.to_owned()],
        });
        policy()
            .resolve(rpc, peer.as_ref())
            .map_err(|d| d.status.code())
    }

    use tonic::Code;

    #[test]
    fn each_role_reaches_only_its_services() {
        let allowed = [
            ("tributi", "/incasso.v1.NoticeService/CreateDebtPosition"),
            ("tributi-ro", "/incasso.v1.NoticeService/ListDebtPositions"),
            (
                "fascicolo",
                "/incasso.v1.CitizenPaymentsService/ListCitizenNotices",
            ),
            ("audit", "/incasso.v1.LedgerService/VerifyLedger"),
            ("audit", "/incasso.v1.ReconciliationService/GetSummary"),
            (
                "audit",
                "/incasso.v1.ReconciliationService/ListTreasuryReversals",
            ),
            (
                "finance",
                "/incasso.v1.ReconciliationService/ImportDocument",
            ),
            ("finance", "/incasso.v1.ReceiptService/ListReceipts"),
            ("finance", "/incasso.v1.LedgerService/GetTrialBalance"),
            ("ops", "/incasso.v1.ReceiptService/RetryParkedReceipts"),
            (
                "ops",
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            ),
        ];
        for (identity, rpc) in allowed {
            assert!(call(Some(identity), rpc).is_ok(), "{identity} {rpc}");
        }
        let denied = [
            ("tributi-ro", "/incasso.v1.NoticeService/CreateDebtPosition"),
            ("tributi", "/incasso.v1.LedgerService/ListEntries"),
            ("fascicolo", "/incasso.v1.NoticeService/GetDebtPosition"),
            ("audit", "/incasso.v1.ReconciliationService/ImportDocument"),
            ("audit", "/incasso.v1.ReceiptService/RetryParkedReceipts"),
            ("finance", "/incasso.v1.LedgerService/VerifyLedger"),
            ("finance", "/incasso.v1.ReceiptService/RetryParkedReceipts"),
            ("ops", "/incasso.v1.ReceiptService/ListReceipts"),
            ("ops", "/incasso.v1.NoticeService/NotAMethod"),
            ("stranger", "/incasso.v1.LedgerService/ListEntries"),
        ];
        for (identity, rpc) in denied {
            assert_eq!(
                call(Some(identity), rpc).unwrap_err(),
                Code::PermissionDenied,
                "{identity} {rpc}"
            );
        }
        assert_eq!(
            call(None, "/incasso.v1.LedgerService/ListEntries").unwrap_err(),
            Code::Unauthenticated
        );
    }

    #[test]
    fn a_backend_reaches_only_its_creditors_and_kinds() {
        let caller = call(Some("tributi"), "/incasso.v1.NoticeService/GetDebtPosition").unwrap();
        assert!(
            caller
                .check_position("01199250158", Some(DebtKind::Tari), Access::Write)
                .is_ok()
        );
        for (creditor, kind) in [
            ("01199250158", DebtKind::TrafficFine),
            ("08911820960", DebtKind::Tari),
        ] {
            let error = caller
                .check_position(creditor, Some(kind), Access::Read)
                .unwrap_err();
            assert_eq!(error.code(), Code::PermissionDenied);
        }
        let read_only = call(
            Some("tributi-ro"),
            "/incasso.v1.NoticeService/GetDebtPosition",
        )
        .unwrap();
        assert_eq!(
            read_only
                .check_position("01199250158", Some(DebtKind::Tari), Access::Write)
                .unwrap_err()
                .code(),
            Code::PermissionDenied
        );
        let open = AccessPolicy::open()
            .resolve("/incasso.v1.NoticeService/GetDebtPosition", None)
            .map_err(|d| d.status.code())
            .unwrap();
        assert!(
            open.check_position("08911820960", Some(DebtKind::SchoolFee), Access::Write)
                .is_ok()
        );
        assert_eq!(open.position_scope(), None);
    }
}
