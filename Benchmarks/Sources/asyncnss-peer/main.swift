import PeerKit

await PeerCommand<AsyncNSSStack>.runMain()
