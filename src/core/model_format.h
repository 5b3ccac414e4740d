// The first bytes of a Meridian model file (`meridian train --save`), shared
// by the trainer that writes it, the model server that loads it and the
// controller that checks an endpoint's `model:` before creating replicas.
#pragma once

namespace meridian {

inline constexpr char kModelMagic[8] = {'M', 'R', 'D', 'N', 'M', 'D', 'L', '1'};

}  // namespace meridian
