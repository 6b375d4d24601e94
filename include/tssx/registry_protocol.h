/*
 * The registry's protocol, shared by the daemon and its client: what an
 * entry's content means and how a live registry is recognised
 * (docs/registry.md).
 */
#ifndef TSSX_REGISTRY_PROTOCOL_H
#define TSSX_REGISTRY_PROTOCOL_H

/* An entry's content is one digit, the OR of these bits over its open
 * handles. */
#define TSSX_BIT_SERVER 1u /* a TSSX-aware server listens here */
#define TSSX_BIT_CLIENT 2u /* TSSX-aware clients connect here */

/* Answered on the registry's root with the daemon's version, so that
 * clients and a second daemon can tell a live registry from a plain
 * directory. */
#define TSSX_REGISTRY_XATTR "user.tssx.registry"

#endif
