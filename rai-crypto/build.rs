//! Bakes the source commit into `rai-crypto --version` (see common/build.rs).

include!("../common/build_commit.rs");

fn main() {
    bake_commit();
}
