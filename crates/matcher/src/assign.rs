//! Best joint assignment of rows to columns (Hungarian algorithm, O(n^3)). Small problems: the
//! sales that overlap in time and the cars seen during them.

/// For a `rows x cols` score matrix (higher is better), the column given to each row, maximising
/// the total score; `None` where a row is better left unassigned (its best score is <= 0, or the
/// columns ran out). Deterministic: ties go to the lower column index.
pub fn assign_max(scores: &[Vec<f64>]) -> Vec<Option<usize>> {
    let rows = scores.len();
    if rows == 0 {
        return Vec::new();
    }
    let cols = scores[0].len();
    // Square cost matrix: every row also gets its own "unassigned" column worth 0, so leaving a
    // row out is always possible and never blocks another row.
    let n = rows + cols;
    let mut cost = vec![vec![0.0f64; n]; n];
    for ((r, row), cost_row) in scores.iter().enumerate().zip(cost.iter_mut()) {
        for (c, cell) in cost_row.iter_mut().enumerate() {
            *cell = if c < cols {
                -row.get(c).copied().unwrap_or(0.0).max(0.0)
            } else if c - cols == r {
                0.0
            } else {
                1e9
            };
        }
    }
    let matched = hungarian_min(&cost);
    (0..rows)
        .map(|r| {
            let c = matched[r];
            (c < cols && scores[r][c] > 0.0).then_some(c)
        })
        .collect()
}

/// Classic potentials-based Hungarian algorithm for a square cost matrix; returns the column of
/// each row.
fn hungarian_min(cost: &[Vec<f64>]) -> Vec<usize> {
    let n = cost.len();
    let inf = f64::INFINITY;
    // 1-based arrays as in the textbook formulation; index 0 is the virtual start.
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; n + 1];
    let mut p = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![inf; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let cur = cost[i0 - 1][j - 1] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut row_to_col = vec![0; n];
    for j in 1..=n {
        if p[j] > 0 {
            row_to_col[p[j] - 1] = j - 1;
        }
    }
    row_to_col
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joint_beats_greedy() {
        // Greedy would give row 0 column 0 (0.9) and leave row 1 with 0.1.
        let scores = vec![vec![0.9, 0.8], vec![0.85, 0.1]];
        assert_eq!(assign_max(&scores), vec![Some(1), Some(0)]);
    }

    #[test]
    fn rows_may_stay_unassigned() {
        let scores = vec![vec![0.9], vec![0.5], vec![0.0]];
        assert_eq!(assign_max(&scores), vec![Some(0), None, None]);
        assert_eq!(assign_max(&[vec![], vec![]]), vec![None, None]);
        assert!(assign_max(&[]).is_empty());
    }
}
