//! The data a render reads: the latest [`Data`] of every dependency, shared
//! (`Arc`) so that a snapshot is cheap to clone and an engine can tell an
//! entry it has already converted from a new one by pointer. The snapshot
//! knows no engine: each converts what it reads in its own module.

use std::collections::HashMap;
use std::sync::Arc;

use crate::consul::{Data, Dependency};

/// Dependency → its latest data. Cheap to clone (entries are shared).
#[derive(Clone, Default)]
pub struct Snapshot {
    entries: HashMap<Dependency, Arc<Data>>,
}

impl Snapshot {
    /// Stores new data for `dependency` (shared, not copied, when it comes
    /// as an `Arc`); returns whether it differs from what was there.
    pub fn insert(&mut self, dependency: Dependency, data: impl Into<Arc<Data>>) -> bool {
        let data = data.into();
        if self
            .entries
            .get(&dependency)
            .is_some_and(|old| Arc::ptr_eq(old, &data) || **old == *data)
        {
            return false;
        }
        self.entries.insert(dependency, data);
        true
    }

    pub fn data(&self, dependency: &Dependency) -> Option<&Data> {
        self.entries.get(dependency).map(|data| &**data)
    }

    /// The shared entry itself, for engines that cache a conversion of it.
    pub fn shared(&self, dependency: &Dependency) -> Option<&Arc<Data>> {
        self.entries.get(dependency)
    }

    /// Forgets dependencies no template uses any more.
    pub fn retain(&mut self, mut keep: impl FnMut(&Dependency) -> bool) {
        self.entries.retain(|dependency, _| keep(dependency));
    }
}
