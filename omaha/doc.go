// Package omaha keeps network-booted Flatcar and CoreOS images current
// through git, and answers the hosts that boot them.
//
// The updater (Updater.Sync, run by "pxeops omaha sync" and inside serve)
// asks an Omaha v3 update service what a machine of each tracked image
// would be offered, mirrors a newer release's PXE kernel and initrd into
// the content-addressed asset store only after their OpenPGP signatures
// check out against pinned keys, edits images/<id>.yaml in place and
// commits the change to a branch of its own for review. The Responder
// answers update_engine at /v1/update/ with noupdate, keeps a census of
// the versions hosts run, and in proxy mode forwards upstream.
package omaha
