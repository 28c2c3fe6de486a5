//! Why a document was refused. Every refusal names the file, the line and the element, so an
//! operator can open the file at the place and see what is wrong.

use std::fmt;

/// A document refused: malformed XML, a field that breaks its format, a fact the
/// configuration contradicts (another creditor's account, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FormatError {
    /// The file (or the name given to an uploaded document).
    pub file: String,
    /// 1-based line of the element's start tag.
    pub line: u64,
    /// The element's path of local names from the root, `/`-separated.
    pub element: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.element.is_empty() {
            write!(f, "{}: line {}: {}", self.file, self.line, self.reason)
        } else {
            write!(
                f,
                "{}: line {}, element {}: {}",
                self.file, self.line, self.element, self.reason
            )
        }
    }
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The document was refused.
    #[error(transparent)]
    Format(#[from] FormatError),
}
