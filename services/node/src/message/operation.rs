//! The six operations of paForNode and their names: the SOAPAction, the request wrapper the
//! body carries and the response wrapper incasso answers with.

/// The operations of paForNode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// paVerifyPaymentNotice.
    VerifyPaymentNotice,
    /// paGetPayment.
    GetPayment,
    /// paGetPaymentV2.
    GetPaymentV2,
    /// paSendRT.
    SendRt,
    /// paSendRTV2.
    SendRtV2,
    /// paDemandPaymentNotice.
    DemandPaymentNotice,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Self; 6] = [
        Self::VerifyPaymentNotice,
        Self::GetPayment,
        Self::GetPaymentV2,
        Self::SendRt,
        Self::SendRtV2,
        Self::DemandPaymentNotice,
    ];

    /// The operation name (the SOAPAction).
    pub fn name(self) -> &'static str {
        match self {
            Self::VerifyPaymentNotice => "paVerifyPaymentNotice",
            Self::GetPayment => "paGetPayment",
            Self::GetPaymentV2 => "paGetPaymentV2",
            Self::SendRt => "paSendRT",
            Self::SendRtV2 => "paSendRTV2",
            Self::DemandPaymentNotice => "paDemandPaymentNotice",
        }
    }

    /// The request wrapper element (V1 `Req`, V2 `Request`).
    pub fn request_element(self) -> &'static str {
        match self {
            Self::VerifyPaymentNotice => "paVerifyPaymentNoticeReq",
            Self::GetPayment => "paGetPaymentReq",
            Self::GetPaymentV2 => "paGetPaymentV2Request",
            Self::SendRt => "paSendRTReq",
            Self::SendRtV2 => "paSendRTV2Request",
            Self::DemandPaymentNotice => "paDemandPaymentNoticeRequest",
        }
    }

    /// The response wrapper element (V1 `Res`, V2 `Response`).
    pub fn response_element(self) -> &'static str {
        match self {
            Self::VerifyPaymentNotice => "paVerifyPaymentNoticeRes",
            Self::GetPayment => "paGetPaymentRes",
            Self::GetPaymentV2 => "paGetPaymentV2Response",
            Self::SendRt => "paSendRTRes",
            Self::SendRtV2 => "paSendRTV2Response",
            Self::DemandPaymentNotice => "paDemandPaymentNoticeResponse",
        }
    }

    /// The operation a SOAPAction names (quotes and a path prefix tolerated).
    pub fn from_soap_action(action: &str) -> Option<Self> {
        let action = action.trim().trim_matches('"');
        let action = action.rsplit(['/', '#']).next().unwrap_or(action);
        Self::ALL.into_iter().find(|op| op.name() == action)
    }

    pub(super) fn from_request_element(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.request_element() == name)
    }
}
