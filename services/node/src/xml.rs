//! A small, hostile-input-proof XML reader: it builds an element tree from a SOAP message
//! with every limit checked while reading (depth, element count, text size), refuses document
//! type declarations (so no entity can be declared: no XXE, no billion laughs) and every
//! entity reference but the five predefined ones and character references, and keeps only
//! what the paForNode messages use: element local names, their namespaces, their text and the
//! names of their attributes. Every start tag's attribute list is checked for
//! well-formedness (names, quotes, references, duplicates, bound prefixes) with a bound on its
//! length, so that a malformed or hostile tag is refused here; whether an attribute is
//! *allowed* is the schema's question, answered by the message layer. Attribute values are
//! checked but not kept: no paForNode element carries one.

use quick_xml::events::Event;
use quick_xml::name::{QName, ResolveResult};
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
    /// Most attributes (namespace declarations included) on one element.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 24,
            max_elements: 4_000,
            max_text_chars: 512 * 1024,
            // Real senders put at most a handful of namespace declarations on the envelope;
            // the bound keeps the duplicate check (quadratic in the count) cheap.
            max_attributes: 32,
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

/// An attribute of an element (never a namespace declaration): its name, resolved. Its
/// value is checked while reading but not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Local name.
    pub name: String,
    /// Namespace URI, if the name has a prefix (an unprefixed attribute has no namespace,
    /// whatever the default namespace is).
    pub namespace: Option<String>,
}

/// An element: its local name, namespace, attributes, children and text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Local name.
    pub name: String,
    /// Namespace URI, if qualified.
    pub namespace: Option<String>,
    /// Attributes other than namespace declarations, in document order.
    pub attributes: Vec<Attribute>,
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
                let attributes = attributes(&reader, &start, limits)?;
                stack.push(Element {
                    name,
                    namespace,
                    attributes,
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

/// XML 1.0 (fifth edition) `NameStartChar`, colon excluded: names are checked as QNames.
fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 `NameChar`, colon excluded.
fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// A namespace-well-formed name: `NCName` or `NCName:NCName`.
fn is_qname(name: &str) -> bool {
    let ncname = |part: &str| {
        let mut chars = part.chars();
        chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
    };
    match name.split_once(':') {
        Some((prefix, local)) => ncname(prefix) && ncname(local),
        None => ncname(name),
    }
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Checks an attribute value as written between its quotes: no `<`, and every `&` starts one
/// of the five predefined entities or a character reference to a character XML allows.
fn check_value(value: &str, attribute: &str, element: &str) -> Result<(), XmlError> {
    if value.contains('<') {
        return Err(XmlError::Malformed(format!(
            "'<' in the value of attribute {attribute} of <{element}>"
        )));
    }
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        let after = &rest[at + 1..];
        let end = after.find(';').ok_or_else(|| {
            XmlError::Malformed(format!(
                "unterminated reference in attribute {attribute} of <{element}>"
            ))
        })?;
        let reference = &after[..end];
        let char_ref = reference
            .strip_prefix('#')
            .map(|number| match number.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => number.parse::<u32>().ok(),
            });
        match char_ref {
            Some(code) => {
                let allowed = code
                    .and_then(char::from_u32)
                    .is_some_and(|c| matches!(c, '\t' | '\n' | '\r') || c >= ' ');
                if !allowed {
                    return Err(XmlError::Malformed(format!(
                        "invalid character reference &{}; in attribute {attribute} of <{element}>",
                        reference.chars().take(12).collect::<String>()
                    )));
                }
            }
            None if matches!(reference, "lt" | "gt" | "amp" | "apos" | "quot") => {}
            None => return Err(XmlError::Entity(reference.chars().take(40).collect())),
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// Names in error messages are cut: an attribute name can be as long as the message.
fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}

/// Reads and checks the attribute list of a start tag: `name = "value"` pairs separated by
/// white space, names that are QNames with a declared prefix, values with valid references,
/// no attribute twice (neither as written nor once prefixes are resolved), at most
/// `limits.max_attributes`. The scan is linear in the tag and allocates only the names kept.
fn attributes(
    reader: &NsReader<&[u8]>,
    start: &quick_xml::events::BytesStart<'_>,
    limits: Limits,
) -> Result<Vec<Attribute>, XmlError> {
    let element = start.name().as_ref().to_owned();
    if !is_qname(&element) {
        return Err(XmlError::Malformed(format!(
            "<{}> is not a valid element name",
            shown(&element)
        )));
    }
    let element = shown(&element);
    let raw = start.attributes_raw();
    let bytes = raw.as_bytes();
    let mut at = 0;
    let mut written: Vec<&str> = Vec::new();
    let mut kept: Vec<Attribute> = Vec::new();
    loop {
        let spaced = at < bytes.len() && is_xml_space(bytes[at]);
        while at < bytes.len() && is_xml_space(bytes[at]) {
            at += 1;
        }
        if at == bytes.len() {
            break;
        }
        if !spaced {
            return Err(XmlError::Malformed(format!(
                "attributes of <{element}> must be separated by white space"
            )));
        }
        if written.len() >= limits.max_attributes {
            return Err(XmlError::Limit("the number of attributes of an element"));
        }
        let name_end = raw[at..]
            .find(|c: char| c == '=' || c.is_ascii_whitespace())
            .map_or(bytes.len(), |n| at + n);
        let name = &raw[at..name_end];
        if !is_qname(name) {
            return Err(XmlError::Malformed(format!(
                "'{}' in <{element}> is not a valid attribute name",
                shown(name)
            )));
        }
        at = name_end;
        while at < bytes.len() && is_xml_space(bytes[at]) {
            at += 1;
        }
        if bytes.get(at) != Some(&b'=') {
            return Err(XmlError::Malformed(format!(
                "attribute {} of <{element}> has no value",
                shown(name)
            )));
        }
        at += 1;
        while at < bytes.len() && is_xml_space(bytes[at]) {
            at += 1;
        }
        let quote = match bytes.get(at) {
            Some(q @ (b'"' | b'\'')) => *q,
            _ => {
                return Err(XmlError::Malformed(format!(
                    "the value of attribute {} of <{element}> must be in quotes",
                    shown(name)
                )));
            }
        };
        let value_start = at + 1;
        let value_end = bytes[value_start..]
            .iter()
            .position(|b| *b == quote)
            .map(|n| value_start + n)
            .ok_or_else(|| {
                XmlError::Malformed(format!(
                    "the value of attribute {} of <{element}> is not closed",
                    shown(name)
                ))
            })?;
        check_value(&raw[value_start..value_end], &shown(name), &element)?;
        at = value_end + 1;
        if written.contains(&name) {
            return Err(XmlError::Malformed(format!(
                "attribute {} appears twice in <{element}>",
                shown(name)
            )));
        }
        written.push(name);
        if name == "xmlns" {
            continue;
        }
        if let Some(prefix) = name.strip_prefix("xmlns:") {
            // Namespaces in XML 1.0: a prefix cannot be undeclared.
            if value_end == value_start {
                return Err(XmlError::Malformed(format!(
                    "namespace prefix {} declared empty in <{element}>",
                    shown(prefix)
                )));
            }
            continue;
        }
        let (resolve, local) = reader.resolver().resolve_attribute(QName(name));
        let local = local.as_ref().to_owned();
        let namespace = match resolve {
            ResolveResult::Bound(namespace) => Some(namespace.as_ref().to_owned()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => {
                return Err(XmlError::UnknownPrefix(format!(
                    "{element} {}",
                    shown(name)
                )));
            }
        };
        let attribute = Attribute {
            name: local,
            namespace,
        };
        if kept.contains(&attribute) {
            return Err(XmlError::Malformed(format!(
                "attribute {} appears twice in <{element}> (same name, same namespace)",
                shown(name)
            )));
        }
        kept.push(attribute);
    }
    Ok(kept)
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

    #[test]
    fn attributes_are_kept_by_name_and_namespace() {
        let doc =
            br#"<a:root xmlns:a="urn:a" xmlns="urn:d" a:x = 'v&amp;&#233;' y="1"><c/></a:root>"#;
        let root = parse(doc, Limits::default()).unwrap();
        assert_eq!(
            root.attributes,
            vec![
                Attribute {
                    name: "x".into(),
                    namespace: Some("urn:a".into())
                },
                // An unprefixed attribute is in no namespace, whatever the default is.
                Attribute {
                    name: "y".into(),
                    namespace: None
                },
            ]
        );
        assert!(root.children[0].attributes.is_empty());
        assert_eq!(root.children[0].namespace.as_deref(), Some("urn:d"));
    }

    #[test]
    fn malformed_attribute_lists_are_refused() {
        for doc in [
            "<idPA a=1 & <<>x</idPA>",
            "<a x=\"1\"y=\"2\"/>",
            "<a x/>",
            "<a x=\"1\" x=\"2\"/>",
            "<a xmlns:p=\"urn:p\" xmlns:q=\"urn:p\" p:x=\"1\" q:x=\"2\"/>",
            "<a x=\"<\"/>",
            "<a x=\"&#0;\"/>",
            "<a x=\"& \"/>",
            "<a 1x=\"1\"/>",
            "<a x:y:z=\"1\"/>",
            "<a xmlns:p=\"\"/>",
            "<a x=\"1/>",
        ] {
            assert!(
                matches!(
                    parse(doc.as_bytes(), Limits::default()),
                    Err(XmlError::Malformed(_))
                ),
                "{doc}: {:?}",
                parse(doc.as_bytes(), Limits::default())
            );
        }
        assert!(matches!(
            parse(b"<a x=\"&e;\"/>", Limits::default()),
            Err(XmlError::Entity(_))
        ));
        assert!(matches!(
            parse(b"<a p:x=\"1\"/>", Limits::default()),
            Err(XmlError::UnknownPrefix(_))
        ));
    }

    #[test]
    fn attribute_lists_are_bounded() {
        let many: String = (0..60_000).map(|i| format!(" a{i}=\"1\"")).collect();
        let doc = format!("<a{many}/>");
        let started = std::time::Instant::now();
        assert_eq!(
            parse(doc.as_bytes(), Limits::default()),
            Err(XmlError::Limit("the number of attributes of an element"))
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let exactly: String = (0..32).map(|i| format!(" a{i}=\"1\"")).collect();
        assert_eq!(
            parse(format!("<a{exactly}/>").as_bytes(), Limits::default())
                .unwrap()
                .attributes
                .len(),
            32
        );
        // A huge value is scanned, not copied: the element keeps only the name.
        let doc = format!("<a big=\"{}\"/>", "x".repeat(900_000));
        let root = parse(doc.as_bytes(), Limits::default()).unwrap();
        assert_eq!(root.attributes[0].name, "big");
    }
}
