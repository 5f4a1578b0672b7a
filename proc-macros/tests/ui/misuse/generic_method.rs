#[monogusa::service]
pub trait Store {
    fn get<T: serde::de::DeserializeOwned>(&self, key: String) -> T;
}

fn main() {}
