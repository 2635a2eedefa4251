//! The map type of the data's name → value fields (meta, tagged
//! addresses): entries sorted by name in one exact-size allocation.
//!
//! Consul's maps hold a handful of entries and the data is kept for as
//! long as it is current, once per instance. A `BTreeMap` allocates room
//! for eleven entries however few it holds (an instance's four maps cost
//! about 2 KiB that way); this costs what its entries do. It reads like a
//! `BTreeMap` (sorted iteration, `get`, equality, serialized as a map) and
//! is built only by collecting, which sorts and keeps the last of
//! duplicate names.
//!
//! It also remembers a map Consul sent as `null` (or left out): Go's nil
//! map, which consul-template's `toJSON` prints as `null` and `%#v` as
//! `(nil)`, apart from an empty one. Everything else reads it as empty.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Serialize, Serializer};

/// A sorted map of names to `V`, read-only once built.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SmallMap<V> {
    entries: Box<[(String, V)]>,
    nil: bool,
}

impl<V> SmallMap<V> {
    /// The map of a `null` (or missing) field.
    pub fn nil() -> Self {
        SmallMap {
            entries: Box::default(),
            nil: true,
        }
    }

    /// Whether Consul sent the map as `null` (or not at all).
    pub fn is_nil(&self) -> bool {
        self.nil
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value under `name`.
    pub fn get<Q>(&self, name: &Q) -> Option<&V>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries
            .binary_search_by(|(k, _)| k.borrow().cmp(name))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The entries in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &V)> + Clone {
        self.into_iter()
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> + Clone {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The map in the model's shape, for writing data back out as Consul
    /// would send it: `None` for a nil map.
    pub fn to_wire(&self) -> Option<BTreeMap<String, V>>
    where
        V: Clone,
    {
        (!self.nil).then(|| self.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

impl<V> Default for SmallMap<V> {
    fn default() -> Self {
        SmallMap {
            entries: Box::default(),
            nil: false,
        }
    }
}

impl<V> FromIterator<(String, V)> for SmallMap<V> {
    /// Sorts by name; of entries with the same name the last one stays,
    /// as a map's insert would leave it.
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        let mut entries: Vec<(String, V)> = iter.into_iter().collect();
        // Stable: equal names keep their order, so the last is the latest.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(String, V)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        SmallMap {
            entries: kept.into_boxed_slice(),
            nil: false,
        }
    }
}

impl<V, const N: usize> From<[(String, V); N]> for SmallMap<V> {
    fn from(entries: [(String, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<'a, V> IntoIterator for &'a SmallMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (String, V)>, fn(&'a (String, V)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<V: fmt::Debug> fmt::Debug for SmallMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: Serialize> Serialize for SmallMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, u32)]) -> SmallMap<u32> {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn reads_like_the_btree_map_of_the_same_entries() {
        let entries = [("b", 2), ("a", 1), ("c", 3), ("a", 4)];
        let small = map(&entries);
        let btree: BTreeMap<String, u32> =
            entries.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(
            small.iter().collect::<Vec<_>>(),
            btree.iter().collect::<Vec<_>>()
        );
        assert_eq!(small.len(), 3);
        for name in ["a", "b", "c", "d", ""] {
            assert_eq!(small.get(name), btree.get(name), "{name}");
        }
        assert_eq!(small.get("a"), Some(&4), "the last of duplicates stays");
        assert_eq!(format!("{small:?}"), format!("{btree:?}"));
        assert_eq!(
            serde_json::to_string(&small).unwrap(),
            serde_json::to_string(&btree).unwrap()
        );
        assert_eq!(small.to_wire(), Some(btree));
    }

    #[test]
    fn equal_entries_make_equal_maps_whatever_their_order() {
        assert_eq!(map(&[("x", 1), ("y", 2)]), map(&[("y", 2), ("x", 1)]));
        assert_ne!(map(&[("x", 1)]), map(&[("x", 2)]));
        assert!(SmallMap::<u32>::default().is_empty());
        assert_eq!(
            map(&[("k", 1)]).iter().collect::<Vec<_>>(),
            vec![(&"k".to_string(), &1)]
        );
    }

    #[test]
    fn a_nil_map_reads_as_empty_but_is_told_apart() {
        let nil = SmallMap::<u32>::nil();
        assert!(nil.is_nil() && nil.is_empty() && nil.get("a").is_none());
        assert!(!SmallMap::<u32>::default().is_nil());
        assert_ne!(nil, SmallMap::default());
        assert_eq!(nil.to_wire(), None);
        assert_eq!(serde_json::to_string(&nil).unwrap(), "{}");
    }
}
