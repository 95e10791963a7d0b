import PeerKit

await PeerCommand<NIOSSLStack>.runMain()
