//! Where a field is in a YAML file: the line and column a load error points at, so
//! `sluice check` reads like a compiler (`pools.yaml:12:5: pool default/web: spec...`) and
//! CI annotators can mark the line.
//!
//! A second, position-keeping parse of the text (`saphyr-parser` events) that is only ever
//! used to place errors: the documents themselves are read by `serde_norway`. Anything it
//! cannot place (aliases, merge keys, text it cannot parse) simply gets no location.

use saphyr_parser::{Event, Parser, Span, SpannedEventReceiver};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Location {
    fn of(span: Span) -> Location {
        Location {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// One YAML node with where it starts.
#[derive(Debug)]
enum Node {
    /// Entries with the key's text and position.
    Map(Vec<(String, Location, Node)>, Location),
    Seq(Vec<Node>, Location),
    Scalar(String, Location),
    /// Aliases and keys that are not scalars: positioned, not walked into.
    Other(Location),
}

impl Node {
    fn at(&self) -> Location {
        match self {
            Node::Map(_, at) | Node::Seq(_, at) | Node::Scalar(_, at) | Node::Other(at) => *at,
        }
    }

    fn get(&self, key: &str) -> Option<(Location, &Node)> {
        match self {
            Node::Map(entries, _) => entries
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, at, node)| (*at, node)),
            _ => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Node::Scalar(s, _) => Some(s),
            _ => None,
        }
    }
}

/// The documents of one file, positioned.
#[derive(Debug, Default)]
pub struct Positions {
    docs: Vec<Node>,
}

impl Positions {
    /// Parses `text`; whatever does not parse is left out.
    pub fn of(text: &str) -> Positions {
        let mut builder = Builder::default();
        let _ = Parser::new_from_str(text).load(&mut builder, true);
        Positions { docs: builder.docs }
    }

    /// Where `field` (`spec.endpoints[0].weight`) of the document of `pool`
    /// (`namespace/name`, namespace `default` when left out) is: the key of the deepest
    /// part of the path present, so a missing field points at the block it belongs in. A
    /// BackendPool document of that name is preferred over another kind's.
    pub fn field(&self, pool: &str, field: &str) -> Option<Location> {
        let named = |d: &&Node| document_name(d).as_deref() == Some(pool);
        let doc = self
            .docs
            .iter()
            .filter(named)
            .find(|d| kind(d) == Some("BackendPool"))
            .or_else(|| self.docs.iter().find(named))?;
        Some(walk(doc, steps(field)))
    }

    /// Where the keys `keys` (taken literally: annotation names hold dots) of the `kind`
    /// object `namespace/name` are, as [`Positions::field`] places them.
    pub fn keys(&self, kind_name: &str, object: &str, keys: &[&str]) -> Option<Location> {
        let doc = self
            .docs
            .iter()
            .find(|d| kind(d) == Some(kind_name) && document_name(d).as_deref() == Some(object))?;
        Some(walk(doc, keys.iter().map(|k| Step::Key(k)).collect()))
    }
}

/// The position of the deepest part of `path` present in `doc`.
fn walk(doc: &Node, path: Vec<Step<'_>>) -> Location {
    let mut node = doc;
    let mut at = doc.at();
    for step in path {
        let next = match step {
            Step::Key(key) => node.get(key),
            Step::Index(i) => match node {
                Node::Seq(items, _) => items.get(i).map(|n| (n.at(), n)),
                _ => None,
            },
        };
        let Some((place, child)) = next else { break };
        at = place;
        node = child;
    }
    at
}

/// A document's `kind`.
fn kind(doc: &Node) -> Option<&str> {
    doc.get("kind")?.1.text()
}

/// `namespace/name` of a BackendPool document.
fn document_name(doc: &Node) -> Option<String> {
    let (_, meta) = doc.get("metadata")?;
    let name = meta.get("name")?.1.text()?;
    let namespace = meta
        .get("namespace")
        .and_then(|(_, n)| n.text())
        .unwrap_or("default");
    Some(format!("{namespace}/{name}"))
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `spec.endpoints[0].weight` -> key spec, key endpoints, index 0, key weight.
fn steps(field: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in field.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Step::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

/// Builds [`Node`] trees from parser events.
#[derive(Default)]
struct Builder {
    docs: Vec<Node>,
    stack: Vec<Frame>,
}

enum Frame {
    Map {
        entries: Vec<(String, Location, Node)>,
        key: Option<(String, Location)>,
        at: Location,
    },
    Seq {
        items: Vec<Node>,
        at: Location,
    },
}

impl Builder {
    fn attach(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some((k, at)) => entries.push((k, at, node)),
                None => {
                    let text = node.text().unwrap_or_default().to_owned();
                    *key = Some((text, node.at()));
                }
            },
        }
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        let at = Location::of(span);
        match ev {
            Event::MappingStart(..) => self.stack.push(Frame::Map {
                entries: Vec::new(),
                key: None,
                at,
            }),
            Event::SequenceStart(..) => self.stack.push(Frame::Seq {
                items: Vec::new(),
                at,
            }),
            Event::MappingEnd | Event::SequenceEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Map { entries, at, .. }) => Node::Map(entries, at),
                    Some(Frame::Seq { items, at }) => Node::Seq(items, at),
                    None => return,
                };
                self.attach(node);
            }
            Event::Scalar(value, ..) => self.attach(Node::Scalar(value.into_owned(), at)),
            Event::Alias(_) => self.attach(Node::Other(at)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# pools\n---\napiVersion: sluice.dev/v1alpha1\nkind: BackendPool\nmetadata: {name: api}\nspec:\n  listener:\n    port: 8080\n  endpoints:\n    - address: 10.0.0.1:80\n    - {address: 10.0.0.2:80, weight: 0}\n---\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  algoritm: Random\n";

    fn at(line: usize, column: usize) -> Option<Location> {
        Some(Location { line, column })
    }

    #[test]
    fn a_field_is_placed_at_its_key_in_the_document_of_its_pool() {
        let p = Positions::of(FILE);
        assert_eq!(p.field("default/api", "spec.listener.port"), at(8, 5));
        assert_eq!(
            p.field("default/api", "spec.endpoints[1].weight"),
            at(11, 30)
        );
        assert_eq!(p.field("default/api", "spec.endpoints[0]"), at(10, 7));
        assert_eq!(p.field("shop/web", "spec.algoritm"), at(17, 3));
    }

    #[test]
    fn a_missing_field_points_at_the_deepest_block_present() {
        let p = Positions::of(FILE);
        assert_eq!(p.field("default/api", "spec.healthCheck.path"), at(6, 1));
        assert_eq!(p.field("default/other", "spec"), None);
    }

    #[test]
    fn text_that_does_not_parse_places_nothing_and_does_not_panic() {
        let p = Positions::of("metadata: {name: a\nspec: [");
        assert_eq!(p.field("default/a", "spec"), None);
    }
}
