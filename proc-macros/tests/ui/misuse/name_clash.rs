#[monogusa::service]
pub trait Files {
    fn open(&self, path: String) -> u64;
}

fn main() {}
