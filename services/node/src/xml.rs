//! A small, hostile-input-proof XML reader: it builds an element tree from a SOAP message
//! with every limit checked while reading (depth, element count, text size), refuses document
//! type declarations (so no entity can be declared: no XXE, no billion laughs) and every
//! entity reference but the five predefined ones and character references, and keeps only
//! what the paForNode messages use: element local names, their namespaces and their text.
//! Attributes other than namespace declarations carry nothing in these messages and are
//! ignored.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// How much of a message is accepted.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting.
    pub max_depth: usize,
    /// Most elements in the document.
    pub max_elements: usize,
    /// Most characters of text in one element.
    pub max_text_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 24,
            max_elements: 4_000,
            max_text_chars: 512 * 1024,
        }
    }
}

/// Why a message is not acceptable XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not UTF-8.
    #[error("the message is not UTF-8")]
    NotUtf8,
    /// A DOCTYPE.
    #[error("document type declarations are not accepted")]
    DocType,
    /// An entity other than the predefined ones.
    #[error(
        "entity reference &{0}; is not accepted (only &lt; &gt; &amp; &apos; &quot; and character references)"
    )]
    Entity(String),
    /// Too deep, too many elements, or too much text.
    #[error("the message exceeds the limit on {0}")]
    Limit(&'static str),
    /// Not well-formed.
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    /// An element prefix with no namespace declaration.
    #[error("undeclared namespace prefix in <{0}>")]
    UnknownPrefix(String),
}

/// An element: its local name, namespace, children and text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Local name.
    pub name: String,
    /// Namespace URI, if qualified.
    pub namespace: Option<String>,
    /// Child elements, in order.
    pub children: Vec<Element>,
    /// Text content (concatenated, entities resolved).
    pub text: String,
}

fn malformed(error: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(error.to_string())
}

fn namespace_of(resolve: &ResolveResult<'_>, name: &str) -> Result<Option<String>, XmlError> {
    match resolve {
        ResolveResult::Bound(namespace) => Ok(Some(namespace.as_ref().to_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(_) => Err(XmlError::UnknownPrefix(name.to_owned())),
    }
}

/// Parses a whole document into its root element.
pub fn parse(bytes: &[u8], limits: Limits) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut elements = 0usize;
    loop {
        let (resolve, event) = reader.read_resolved_event().map_err(malformed)?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::Malformed("content after the root element".into()));
                }
                elements += 1;
                if elements > limits.max_elements {
                    return Err(XmlError::Limit("the number of elements"));
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::Limit("nesting depth"));
                }
                let name = start.local_name().as_ref().to_owned();
                let namespace = namespace_of(&resolve, &name)?;
                stack.push(Element {
                    name,
                    namespace,
                    ..Element::default()
                });
            }
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(text) => append(&mut stack, &text.xml10_content(), limits)?,
            Event::CData(data) => {
                append(&mut stack, data.as_ref(), limits)?;
            }
            Event::GeneralRef(reference) => {
                let character = match reference.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c,
                    None => match reference.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => return Err(XmlError::Entity(other.chars().take(40).collect())),
                    },
                };
                append(&mut stack, character.encode_utf8(&mut [0; 4]), limits)?;
            }
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::PI(_) => {
                return Err(XmlError::Malformed(
                    "processing instructions are not accepted".into(),
                ));
            }
            Event::Empty(_) => return Err(malformed("unexpected empty element")),
            Event::Decl(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("the document ends inside an element"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

fn append(stack: &mut [Element], text: &str, limits: Limits) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(element) => {
            if element.text.len() + text.len() > limits.max_text_chars {
                return Err(XmlError::Limit("the size of a text"));
            }
            element.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(malformed("text outside the root element")),
    }
}

/// Escapes text for element content.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_namespaces_and_entities() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
            <a:root xmlns:a="urn:a"><child>1 &lt; 2 &amp; &#x33;</child><b:x xmlns:b="urn:b"/><![CDATA[<raw>]]></a:root>"#;
        let root = parse(doc, Limits::default()).unwrap();
        assert_eq!(root.name, "root");
        assert_eq!(root.namespace.as_deref(), Some("urn:a"));
        assert_eq!(root.children[0].text, "1 < 2 & 3");
        assert_eq!(root.children[0].namespace, None);
        assert_eq!(root.children[1].namespace.as_deref(), Some("urn:b"));
        assert_eq!(root.text.trim(), "<raw>");
    }

    #[test]
    fn hostile_documents_are_refused() {
        let billion_laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert_eq!(
            parse(billion_laughs, Limits::default()),
            Err(XmlError::DocType)
        );
        let xxe = br#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>"#;
        assert_eq!(parse(xxe, Limits::default()), Err(XmlError::DocType));
        assert!(matches!(
            parse(b"<x>&e;</x>", Limits::default()),
            Err(XmlError::Entity(_))
        ));
        assert_eq!(
            parse(b"<x>\xff</x>", Limits::default()),
            Err(XmlError::NotUtf8)
        );
        let deep = "<a>".repeat(30) + &"</a>".repeat(30);
        assert_eq!(
            parse(deep.as_bytes(), Limits::default()),
            Err(XmlError::Limit("nesting depth"))
        );
        let wide = format!("<a>{}</a>", "<b/>".repeat(5000));
        assert_eq!(
            parse(wide.as_bytes(), Limits::default()),
            Err(XmlError::Limit("the number of elements"))
        );
        assert!(parse(b"<a><b></a>", Limits::default()).is_err());
        assert!(parse(b"<a></a><b></b>", Limits::default()).is_err());
        assert!(matches!(
            parse(b"<p:a/>", Limits::default()),
            Err(XmlError::UnknownPrefix(_) | XmlError::Malformed(_))
        ));
        assert!(parse(b"<?php echo 1 ?><a/>", Limits::default()).is_err());
    }
}
