//! workmesh-build (work in progress)
