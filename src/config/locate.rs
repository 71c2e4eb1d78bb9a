//! Maps a configuration path such as `runner_groups[1].min_runners` to the line and column where
//! it is written, so that every problem can point into the file. serde_yaml does not keep node
//! positions, so the file is walked once more with yaml-rust2's event parser.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A position in the configuration file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// Positions of the keys (for `a.b`) and items (for `a[0]`) of a YAML document.
#[derive(Debug, Default)]
pub struct Locations {
    keys: HashMap<String, Location>,
    values: HashMap<String, Location>,
}

impl Locations {
    /// Indexes `text`. Text that does not parse yields an empty index: the syntax error itself is
    /// reported by serde_yaml, with its own position.
    pub fn index(text: &str) -> Locations {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut walker, false).is_err() {
            return Locations::default();
        }
        walker.found
    }

    /// Where the value at `path` is written, or failing that where its key is.
    pub fn value(&self, path: &str) -> Option<Location> {
        self.values
            .get(path)
            .or_else(|| self.keys.get(path))
            .copied()
    }

    /// Where the key at `path` is written.
    pub fn key(&self, path: &str) -> Option<Location> {
        self.keys
            .get(path)
            .or_else(|| self.values.get(path))
            .copied()
    }

    /// The position for `path`, or for the nearest parent that has one.
    pub fn nearest(&self, path: &str) -> Option<Location> {
        let mut p = path.to_string();
        loop {
            if let Some(l) = self.value(&p) {
                return Some(l);
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }
}

enum Frame {
    Map {
        path: String,
        pending_key: Option<String>,
        /// No key seen yet: the mapping is placed at its first key, since yaml-rust2 marks a
        /// block mapping's start after that key.
        fresh: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    found: Locations,
}

fn loc(m: Marker) -> Location {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Location {
        line: m.line(),
        column: m.col() + 1,
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Walker {
    /// The path a new value takes in the current container, or None when the event is a key.
    fn place_value(&mut self, at: Location) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                self.found.values.insert(p.clone(), at);
                Some(p)
            }
            Some(Frame::Map {
                path, pending_key, ..
            }) => match pending_key.take() {
                Some(key) => {
                    let p = join(path, &key);
                    self.found.values.insert(p.clone(), at);
                    Some(p)
                }
                None => None,
            },
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = loc(mark);
        match ev {
            Event::Scalar(text, ..) => {
                // A scalar that is not a value is a key of the current mapping.
                let is_key = self.place_value(at).is_none();
                if let (
                    true,
                    Some(Frame::Map {
                        path,
                        pending_key,
                        fresh,
                    }),
                ) = (is_key, self.stack.last_mut())
                {
                    if std::mem::take(fresh) && !path.is_empty() {
                        self.found.values.insert(path.clone(), at);
                    }
                    self.found.keys.insert(join(path, &text), at);
                    *pending_key = Some(text);
                }
            }
            Event::Alias(_) => {
                self.place_value(at);
            }
            Event::MappingStart(..) => {
                let path = self.place_value(at).unwrap_or_default();
                self.stack.push(Frame::Map {
                    path,
                    pending_key: None,
                    fresh: true,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.place_value(at).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_items() {
        let text = "name: x\nrunner_groups:\n  - name: a\n    max_runners: 3\n  - name: b\n    labels: [l1, l2]\n";
        let l = Locations::index(text);
        assert_eq!(l.key("name"), Some(Location { line: 1, column: 1 }));
        assert_eq!(
            l.value("runner_groups[0].max_runners"),
            Some(Location {
                line: 4,
                column: 18
            })
        );
        assert_eq!(
            l.key("runner_groups[1].name"),
            Some(Location { line: 5, column: 5 })
        );
        assert_eq!(
            l.value("runner_groups[1].labels[1]"),
            Some(Location {
                line: 6,
                column: 18
            })
        );
        assert_eq!(
            l.nearest("runner_groups[1].spec.image"),
            Some(Location { line: 5, column: 5 })
        );
    }
}
