//! A dependency-ordered parallel scheduler, shared by `build` (a step is
//! done when it succeeded on one seed) and `verify` (when every seed agreed
//! and the pins held).
//!
//! Items are positions `0..n` in execution order. An item starts once every
//! item it needs has *passed*; an item whose need did not pass never starts
//! (the caller reports it as blocked), while independent items keep going.
//! Among ready items the lowest position starts first, so runs are
//! deterministic in what they start, if not in when things finish.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex};

struct State<T, E> {
    ready: BinaryHeap<Reverse<usize>>,
    pending: Vec<usize>,
    done: Vec<Option<T>>,
    running: usize,
    fatal: Option<E>,
}

/// Runs `work(p, needs)` for every item whose needs all passed, `jobs` at a
/// time; `needs` hands it the results of the items `p` needs, in the order
/// of `needs[p]`. `settled` is told about each result as it comes.
/// Returns each item's result, `None` for those never started; stops
/// starting items after the first `Err` and returns it.
pub fn run<T, E>(
    needs: &[Vec<usize>],
    jobs: usize,
    passes: impl Fn(&T) -> bool + Sync,
    work: impl Fn(usize, Vec<T>) -> Result<T, E> + Sync,
    settled: impl Fn(usize, &T) + Sync,
) -> Result<Vec<Option<T>>, E>
where
    T: Clone + Send,
    E: Send,
{
    let n = needs.len();
    let mut dependents = vec![Vec::new(); n];
    for (p, ns) in needs.iter().enumerate() {
        for &q in ns {
            dependents[q].push(p);
        }
    }
    let pending: Vec<usize> = needs.iter().map(Vec::len).collect();
    let ready = (0..n).filter(|&p| pending[p] == 0).map(Reverse).collect();
    let state = Mutex::new(State { ready, pending, done: vec![None; n], running: 0, fatal: None });
    let wake = Condvar::new();
    let worker = || {
        loop {
            let (p, inputs) = {
                let Ok(mut s) = state.lock() else { return };
                let p = loop {
                    if s.fatal.is_some() {
                        return;
                    }
                    if let Some(Reverse(p)) = s.ready.pop() {
                        s.running += 1;
                        break p;
                    }
                    if s.running == 0 {
                        return;
                    }
                    s = match wake.wait(s) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                };
                // Every need passed, so every need has a result.
                let inputs: Vec<T> = needs[p].iter().filter_map(|&q| s.done[q].clone()).collect();
                (p, inputs)
            };
            let result = work(p, inputs);
            let Ok(mut s) = state.lock() else { return };
            s.running -= 1;
            match result {
                Ok(t) => {
                    if passes(&t) {
                        for &d in &dependents[p] {
                            s.pending[d] -= 1;
                            if s.pending[d] == 0 {
                                s.ready.push(Reverse(d));
                            }
                        }
                    }
                    settled(p, &t);
                    s.done[p] = Some(t);
                }
                Err(e) => {
                    if s.fatal.is_none() {
                        s.fatal = Some(e);
                    }
                }
            }
            wake.notify_all();
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, n.max(1)) {
            scope.spawn(worker);
        }
    });
    let s = match state.into_inner() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    match s.fatal {
        Some(e) => Err(e),
        None => Ok(s.done),
    }
}

#[cfg(test)]
mod tests {
    use super::run;

    #[test]
    fn needs_come_first_and_a_failure_blocks_only_its_dependents() {
        // 0 → 1 → 3, 2 independent, 1 fails.
        let needs = vec![vec![], vec![0], vec![], vec![1]];
        let order = std::sync::Mutex::new(Vec::new());
        let done = run::<bool, ()>(
            &needs,
            2,
            |ok| *ok,
            |p, inputs| {
                assert!(inputs.iter().all(|ok| *ok));
                order.lock().unwrap().push(p);
                Ok(p != 1)
            },
            |_, _| {},
        )
        .unwrap();
        assert_eq!(done, [Some(true), Some(false), Some(true), None]);
        let order = order.into_inner().unwrap();
        assert!(order.iter().position(|&p| p == 0) < order.iter().position(|&p| p == 1));
    }
}
