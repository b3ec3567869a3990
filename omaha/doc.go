// Package omaha speaks the Omaha v3 update protocol that Flatcar and
// CoreOS update_engine use, and answers the hosts that boot those images.
//
// It owns the wire types and their parsing (protocol.go), version
// comparison (version.go), the Client that asks an update service what a
// machine would be offered (client.go), and the Responder that answers
// update_engine at /v1/update/ with noupdate, keeps a bounded census of
// the versions hosts run (metrics.go), and in proxy mode forwards
// upstream. It knows nothing of the model, git or the asset store: the
// daemon hands the Responder its Policy as plain values.
//
// Mirroring releases and proposing them in git is package
// omaha/updater's job.
package omaha
