import Testing

/// The loopback and interop tests. They run one at a time: several of them
/// count file descriptors or measure CPU time, which concurrent tests would disturb.
@Suite(.serialized, .timeLimit(.minutes(3)))
enum Integration {}
