"""Learned merges: methods whose hyper-parameters include numbers fitted on unlabelled images.

They are registered in the one merge registry like every grid method; `LearnedMerge.learn` fills
in the learned numbers, after which the method merges like any other (in memory or streaming).
"""
