/*
 * claude-gateway (libcgw): streaming Claude agents with MCP tools, in C.
 *
 * Umbrella header: include this one. Every object lives on one libevent loop owned by a
 * cgw_ctx_t; see docs/ for the design and README.md for a quick start.
 */
#ifndef CGW_H
#define CGW_H

#include "cgw/common.h"
#include "cgw/error.h"
#include "cgw/ctx.h"
#include "cgw/eventlog.h"
#include "cgw/mcp_config.h"
#include "cgw/mcp_tools.h"
#include "cgw/store.h"
#include "cgw/anthropic.h"
#include "cgw/mock_api.h"
#include "cgw/mcp.h"
#include "cgw/dispatcher.h"
#include "cgw/runner.h"
#include "cgw/gateway.h"

#endif
