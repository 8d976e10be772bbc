/* Pure parts of the runner: prices and cost, and the tool_result block rules. */
#include <math.h>
#include <string.h>

#include "agent/agent_int.h"
#include "core/alloc.h"

/* USD per million tokens (list prices). Cache writes: 5-minute 1.25x input, 1-hour 2x input;
 * cache reads 0.1x input. */
static const cgw_model_price_t default_prices[] = {
    {"opus-4", 15.0, 75.0, 18.75, 30.0, 1.50}, {"opus-4-5", 5.0, 25.0, 6.25, 10.0, 0.50},
    {"opus-4-6", 5.0, 25.0, 6.25, 10.0, 0.50}, {"opus-4-7", 5.0, 25.0, 6.25, 10.0, 0.50},
    {"3-opus", 15.0, 75.0, 18.75, 30.0, 1.50}, {"sonnet", 3.0, 15.0, 3.75, 6.0, 0.30},
    {"haiku-4-5", 1.0, 5.0, 1.25, 2.0, 0.10},  {"3-5-haiku", 0.80, 4.0, 1.0, 1.6, 0.08},
    {"3-haiku", 0.25, 1.25, 0.30, 0.50, 0.03},
};

static const cgw_price_table_t default_table = {
    default_prices, sizeof(default_prices) / sizeof(default_prices[0]), &default_prices[5]};

const cgw_price_table_t *cgw_price_table_default(void)
{
    return &default_table;
}

const cgw_model_price_t *cgw_price_for(const cgw_price_table_t *table, const char *model)
{
    if (table == NULL) {
        table = &default_table;
    }
    const cgw_model_price_t *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; model != NULL && i < table->count; i++) {
        const char *m = table->entries[i].match;
        size_t len = m ? strlen(m) : 0;
        if (len > best_len && strstr(model, m) != NULL) {
            best = &table->entries[i];
            best_len = len;
        }
    }
    if (best != NULL) {
        return best;
    }
    return table->fallback ? table->fallback : default_table.fallback;
}

double cgw_usage_cost(const cgw_price_table_t *table, const char *model, const cgw_usage_t *u)
{
    if (u == NULL) {
        return 0.0;
    }
    const cgw_model_price_t *p = cgw_price_for(table, model);
    int64_t w1h = u->cache_creation_1h_tokens;
    if (w1h > u->cache_creation_input_tokens) {
        w1h = u->cache_creation_input_tokens;
    }
    int64_t w5m = u->cache_creation_input_tokens - w1h;
    /* input_tokens already excludes cached tokens (anthropic-protocol.md §8): no subtraction. */
    double usd = (double)u->input_tokens * p->input + (double)u->output_tokens * p->output +
                 (double)w5m * p->cache_write_5m + (double)w1h * p->cache_write_1h +
                 (double)u->cache_read_input_tokens * p->cache_read;
    return usd / 1e6;
}

/* ---- tool_result blocks ----------------------------------------------------------------- */

static bool soft_error(const json_t *result)
{
    if (!json_is_object(result)) {
        return false;
    }
    const json_t *status = json_object_get(result, "status");
    return json_is_false(json_object_get(result, "success")) ||
           (json_is_string(status) && strcmp(json_string_value(status), "error") == 0);
}

json_t *cgw_tool_result_block(const char *tool_use_id, const json_t *result, const json_t *error,
                              bool *is_error)
{
    json_t *wrapped = NULL;
    const json_t *payload = result;
    bool err = false;
    if (error != NULL || result == NULL) {
        /* {"error":{code, message[, sub_code]}} with the original's defaults. */
        json_t *e = cgw__tool_error(json_string_value(json_object_get(error, "code")),
                                    json_string_value(json_object_get(error, "sub_code")),
                                    json_string_value(json_object_get(error, "message")));
        wrapped = e ? json_pack("{s:o}", "error", e) : NULL;
        payload = wrapped;
        err = true;
    } else {
        err = soft_error(result);
    }
    char *text = payload ? cgw__json_text(payload, NULL) : NULL;
    json_decref(wrapped);
    if (text == NULL) {
        return NULL;
    }
    json_t *block = json_pack("{s:s, s:s, s:s}", "type", "tool_result", "tool_use_id",
                              tool_use_id ? tool_use_id : "", "content", text);
    cgw_free(text);
    if (block != NULL && err && json_object_set_new(block, "is_error", json_true()) != 0) {
        json_decref(block);
        return NULL;
    }
    if (is_error != NULL) {
        *is_error = err;
    }
    return block;
}

double cgw__round(double v, int places)
{
    double f = pow(10.0, places);
    return round(v * f) / f;
}
