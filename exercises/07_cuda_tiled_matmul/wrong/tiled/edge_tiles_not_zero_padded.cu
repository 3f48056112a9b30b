    float acc = 0.0f;
    for (int t = 0; t < K; t += TILE) {
        As[ty * TILE + tx] = A[row * K + t + tx];
        Bs[ty * TILE + tx] = B[(t + ty) * N + col];
        __syncthreads();
        for (int k = 0; k < TILE; ++k) acc += As[ty * TILE + k] * Bs[k * TILE + tx];
        __syncthreads();
    }
    if (row < M && col < N) C[row * N + col] = acc;
