// Weight types without an int8 kernel re-encoded at load into one that has one, so that
// K-quant and Q5 files (Gemma 3's Q4_K_M mixes Q5_0, Q4_K and Q6_K) take the integer path:
//   Q5_0 -> Q8_0  exact: q8 = q5 - 16 with the same f16 scale;
//   Q4_K -> Q4_1  per 32-value sub-block x = (d*sc) q - dmin*m becomes d' q + m' with
//                 d' = f16(d*sc), m' = f16(-dmin*m): the nibbles are kept, the two products
//                 are rounded to f16 (relative error <= 2^-11 of a scale);
//   Q5_1, Q5_K, Q6_K -> Q8_0  requantized from their exact f32 values, 32 at a time, as
//                 llama.cpp quantizes Q8_0 (d = amax / 127, q = round(x / d)): error <= d / 2
//                 plus 127 times the f16 rounding of d (<= 2^-11 d).
// Other types are returned as they are. The result owns its blocks (WeightView::
// data_storage); matmul then computes with the new type wherever it runs.
#pragma once

#include "ops/matmul.h"

namespace glimpse {

// The type w would be re-encoded into, or w.type itself.
GgmlType int8_transcode_type(GgmlType t);
WeightView transcode_for_int8(const WeightView& w);

}  // namespace glimpse
