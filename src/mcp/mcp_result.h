/*
 * Mapping an MCP tools/call outcome to the original's (result, error) pair
 * (../shared/docs/seed-behaviour.md §2.5), plus the non-text content the original dropped.
 *
 * Success (a result without isError):
 *   result = structuredContent when present (any JSON value but null);
 *            else the text items joined (see below) and parsed as JSON (any value);
 *            else {"text": <joined text>} when that text is not valid JSON;
 *            else {} (no text at all).
 * Tool failure (isError true):
 *   error = {"code": "mcp_tool_error", "sub_code": S, "message": M}, M = the joined text,
 *           else structuredContent serialized like Python's json.dumps (", " and ": "
 *           separators, ASCII-only), else "MCP tool failed: <tool>". S by keyword in M
 *           (case-insensitive): "not found" / "no filing" / "no data" -> "not_found";
 *           "parse" / "invalid" / "malformed" -> "parse_error"; "timeout" / "timed out" ->
 *           "timeout"; else "unknown".
 * Protocol or transport failure (a JSON-RPC error, a timeout, a dead server):
 *   error = {"code": "tool_error", "sub_code": S, "message": M}. For a JSON-RPC error M is
 *           its "message" (or "JSON-RPC error <code>" when it has none) and the object also
 *           carries "rpc_code" (and "rpc_data" when present). S: the cgw code decides first
 *           (CGW_ETIMEDOUT -> "timeout"; CGW_ESERVERDIED, CGW_ECLOSED, CGW_EPIPE,
 *           CGW_ECONNRESET, CGW_ECONNREFUSED -> "connection_error"), else keywords in M:
 *           "timeout" / "timed out" -> "timeout", "connection" / "refused" ->
 *           "connection_error", else "unknown".
 * Joined text: the "text" of every item of type "text" whose text is not whitespace-only,
 * joined with "\n", then trimmed of surrounding whitespace (Python's str.strip()).
 *
 * Extra content (new; the original dropped it): `content` is an array of Anthropic
 * tool_result content blocks for the items that are not plain text, in order, or NULL when
 * there are none. Items whose annotations.audience is present and lacks "assistant" are left
 * out. It is filled for successes and for isError results alike.
 *   image {data, mimeType}  -> {"type":"image","source":{"type":"base64","media_type":M,
 *                                "data":D}} when M is image/jpeg, image/png, image/gif or
 *                                image/webp; otherwise a text block saying it was omitted.
 *   audio {data, mimeType}  -> a text block "[audio <mime>, <n> bytes, not shown: the model
 *                                cannot take audio]".
 *   resource {resource: {uri, mimeType?, text}} -> {"type":"document","source":{"type":
 *                                "text","media_type":"text/plain","data":text},"title":uri}
 *   resource {resource: {uri, mimeType?, blob}} -> image block for the four image types,
 *                                document with a base64 "application/pdf" source for PDFs,
 *                                for text types (text/..., application/json|xml|javascript|
 *                                yaml|x-yaml|toml, *+json, *+xml) the decoded text as a
 *                                text document when it is valid UTF-8 without NUL,
 *                                else a text block saying it was omitted.
 *   resource_link {uri, name, description?, mimeType?} -> a text block
 *                                "[resource link] <name>: <uri> (<mime>) - <description>".
 *   unknown item types          -> a text block "[unsupported MCP content type '<t>']".
 * Malformed items (missing data, wrong types) become such text blocks too, never a failure.
 *
 * Pure functions, no loop; the output owns new jansson references.
 */
#ifndef CGW_MCP_RESULT_H
#define CGW_MCP_RESULT_H

#include <jansson.h>

#include "cgw/error.h"

/* Exactly one of result and error is non-NULL after a successful mapping. */
typedef struct cgw_mcp_outcome {
    json_t *result;  /* the tool's value (object or any JSON value), or NULL */
    json_t *error;   /* {"code","sub_code","message"[,"rpc_code","rpc_data"]}, or NULL */
    json_t *content; /* extra Anthropic content blocks (array), or NULL */
} cgw_mcp_outcome_t;

#define CGW_MCP_OUTCOME_INIT                                                                       \
    {                                                                                              \
        NULL, NULL, NULL                                                                           \
    }

/* Maps the "result" member of a tools/call response (borrowed). `tool` names the tool for
 * the fallback message. A result that is not an object is mapped as a tool_error
 * ("malformed tools/call result"). Returns CGW_OK or CGW_ENOMEM (out cleared). */
int cgw__mcp_outcome_from_result(const json_t *rpc_result, const char *tool,
                                 cgw_mcp_outcome_t *out);

/* Maps the "error" member of a JSON-RPC response (borrowed; a non-object is treated as an
 * error without message). Returns CGW_OK or CGW_ENOMEM. */
int cgw__mcp_outcome_from_rpc_error(const json_t *rpc_error, cgw_mcp_outcome_t *out);

/* Maps a local failure: `code` is the cgw error (CGW_ETIMEDOUT, CGW_ESERVERDIED, ...),
 * `message` a readable sentence (NULL = cgw_strerror(code)). Returns CGW_OK or CGW_ENOMEM. */
int cgw__mcp_outcome_from_failure(int code, const char *message, cgw_mcp_outcome_t *out);

/* An error outcome with the given fields (the manager's "unknown_tool" and "MCP server
 * unavailable" cases). sub_code may be NULL (then left out). Returns CGW_OK or CGW_ENOMEM. */
int cgw__mcp_outcome_error(const char *code, const char *sub_code, const char *message,
                           cgw_mcp_outcome_t *out);

/* The "Extra content" conversion above on its own: *blocks becomes a new array of content
 * blocks, or NULL when `content` (an MCP content array, borrowed) has no item that needs
 * one. Returns CGW_OK or CGW_ENOMEM (*blocks NULL). */
int cgw__mcp_content_blocks(const json_t *content, json_t **blocks);

/* Releases the references and resets the fields to NULL (NULL is fine). */
void cgw__mcp_outcome_clear(cgw_mcp_outcome_t *out);

#endif
